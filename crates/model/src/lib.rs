//! The rampart gateway config document.
//!
//! Owns: the document's types ([`raw`]), validation ([`compile()`]), the validated [`Config`],
//! its canonical form and [`VersionId`], structural [`diff()`] and the JSON Schema.
//! Must not: do I/O or anything async. Gateway, control plane and CLI all validate through
//! this crate, so a document valid in one place is valid everywhere.

pub mod compile;
pub mod config;
pub mod defaults;
pub mod diff;
pub mod duration;
pub mod error;
pub mod parse;
pub mod path;
pub mod raw;
pub mod version;

pub use compile::{compile, parse_endpoint};
pub use config::*;
pub use diff::{Change, ChangeKind, diff, diff_values, high_risk};
pub use error::{CompileErrors, ConfigError, LoadError};
pub use parse::{Format, parse_document};
pub use path::{EscapedSlashes, PathError};
pub use raw::Document;
pub use version::{VersionId, canonical_json};

/// Parses and validates a document in one step.
pub fn load(text: &str) -> Result<Config, LoadError> {
    Ok(compile(parse_document(text)?)?)
}

/// The JSON Schema of the document, for editors.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Document)).unwrap_or(serde_json::Value::Null)
}
