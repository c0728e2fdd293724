//! The one failure every function shares: a request or event that breaks a rule, named by its field. Everything else
//! a function can fail with is its own error enum, so that classifying it is a `match`.

use crate::classify::{Classify, ErrorType};

/// A request, event or uploaded document that breaks a rule: `Permanent.InvalidInput`, raised before any mutating
/// call, naming the field and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid request: `{field}` {rule}")]
pub struct InvalidInput {
    pub field: String,
    pub rule: String,
}

impl InvalidInput {
    pub fn new(field: impl Into<String>, rule: impl Into<String>) -> Self {
        InvalidInput { field: field.into(), rule: rule.into() }
    }

    /// An input kind the function does not take (an S3 upload sent to a function that only takes requests, ...).
    pub fn not_a_trigger(kind: &str, function: &str) -> Self {
        InvalidInput::new("event", format!("{kind} is not a trigger of {function}"))
    }
}

impl Classify for InvalidInput {
    fn error_type(&self) -> ErrorType {
        ErrorType::INVALID_INPUT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_broken_rule_when_rendered_then_field_and_rule_and_a_permanent_type() {
        let e = InvalidInput::new("names[0]", "is empty");
        assert_eq!(e.to_string(), "invalid request: `names[0]` is empty");
        assert_eq!(e.error_type(), ErrorType::INVALID_INPUT);
        let e = InvalidInput::not_a_trigger("an S3 upload", "start-idle-image-builders");
        assert_eq!(
            e.to_string(),
            "invalid request: `event` an S3 upload is not a trigger of start-idle-image-builders"
        );
    }
}
