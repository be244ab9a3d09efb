//! Reading a document from YAML or JSON text.

use crate::error::LoadError;
use crate::raw::Document;

/// The text format of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

impl Format {
    /// JSON if the first non-blank character opens an object, YAML otherwise.
    pub fn detect(text: &str) -> Format {
        if text.trim_start().starts_with('{') {
            Format::Json
        } else {
            Format::Yaml
        }
    }
}

/// Parses a document; errors carry line and column.
pub fn parse_document(text: &str) -> Result<Document, LoadError> {
    match Format::detect(text) {
        Format::Json => {
            serde_json::from_str(text).map_err(|e| LoadError::Parse(format!("invalid JSON: {e}")))
        }
        Format::Yaml => {
            if text.trim().is_empty() {
                return Err(LoadError::Parse("empty document".into()));
            }
            serde_saphyr::from_str(text).map_err(|e| LoadError::Parse(format!("invalid YAML: {e}")))
        }
    }
}
