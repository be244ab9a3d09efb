//! The rollout policy people write for an environment: YAML (or JSON) with its own JSON Schema,
//! validated into a [`Plan`] with errors that carry paths (`waves[2].percent: …`).
//!
//! ```yaml
//! waves:
//!   - instances: 1
//!     bake: 1m
//!   - percent: 25
//!     bake: 5m
//!     pause: true          # wait for `rampart rollout promote`
//!   - percent: 100
//!     bake: 5m
//! gates: { min_requests: 100, error_ceiling: 0.1 }
//! on_inconclusive: { after: 10m, action: hold }
//! ```

mod compile;
pub mod document;

use std::fmt;

use rampart_model::ConfigError;

pub use document::PolicyDocument;

use crate::plan::Plan;

/// Why a policy text was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    /// Not a well-formed document (syntax, types, unknown fields), with line and column.
    #[error("{0}")]
    Parse(String),
    /// Well-formed, but these fields are wrong.
    #[error("{}", Problems(.0))]
    Invalid(Vec<ConfigError>),
}

struct Problems<'a>(&'a [ConfigError]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(f, "{n} error{} in policy:", if n == 1 { "" } else { "s" })?;
        for e in self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

impl PolicyDocument {
    /// Parses YAML, or JSON when the text opens with `{`.
    pub fn parse(text: &str) -> Result<PolicyDocument, PolicyError> {
        if text.len() > 64 * 1024 {
            return Err(PolicyError::Parse("a policy is at most 64 KiB".to_owned()));
        }
        match rampart_model::Format::detect(text) {
            rampart_model::Format::Json => serde_json::from_str(text)
                .map_err(|e| PolicyError::Parse(format!("invalid JSON: {e}"))),
            rampart_model::Format::Yaml if text.trim().is_empty() => {
                Err(PolicyError::Parse("empty policy".to_owned()))
            }
            rampart_model::Format::Yaml => serde_saphyr::from_str(text)
                .map_err(|e| PolicyError::Parse(format!("invalid YAML: {e}"))),
        }
    }

    /// Checks every field; the plan it describes, or every problem with its path.
    pub fn compile(&self) -> Result<Plan, PolicyError> {
        compile::compile(self).map_err(PolicyError::Invalid)
    }

    /// The document that describes `plan` (compiling it gives `plan` back, less its source).
    pub fn from_plan(plan: &Plan) -> PolicyDocument {
        compile::document(plan)
    }

    /// As YAML, the way `rampart policy show` prints it.
    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).unwrap_or_default()
    }
}

/// Parses and checks a policy text in one step.
pub fn load(text: &str) -> Result<Plan, PolicyError> {
    PolicyDocument::parse(text)?.compile()
}

/// What differs between two plans, read as documents (`waves`, `gates.alpha`, …).
pub fn changes(old: &Plan, new: &Plan) -> Vec<rampart_model::Change> {
    let doc = |p: &Plan| serde_json::to_value(PolicyDocument::from_plan(p)).unwrap_or_default();
    rampart_model::diff_values(&doc(old), &doc(new))
}

/// The JSON Schema of the policy document, for editors.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(PolicyDocument)).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests;
