//! Reading a request's members for the rules the service models cannot express (between members, against state),
//! each failure an error naming the member, with the code and status of the service's validation error. The
//! models' own constraints are checked before, by [`crate::model`].

use serde_json::{Map, Value};

use crate::wire::ApiError;

/// The validation error of one service: Image Builder's `InvalidRequestException`, AppStream's
/// `ValidationException`, CloudFront's `InvalidArgument`.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub code: &'static str,
    pub status: u16,
}

pub type Object = Map<String, Value>;

impl Rules {
    pub fn fail(&self, message: impl Into<String>) -> ApiError {
        ApiError::new(self.code, self.status, message)
    }

    /// The request body as a JSON object (an empty body is an empty object).
    pub fn body(&self, bytes: &[u8]) -> Result<Object, ApiError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Object::new());
        }
        match serde_json::from_slice(bytes) {
            Ok(Value::Object(o)) => Ok(o),
            Ok(_) => Err(self.fail("request body must be a JSON object")),
            Err(e) => Err(ApiError::new("SerializationException", 400, format!("request body is not JSON: {e}"))),
        }
    }

    pub fn object<'a>(&self, parent: &'a Object, field: &str, path: &str) -> Result<Option<&'a Object>, ApiError> {
        match parent.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(o)) => Ok(Some(o)),
            Some(_) => Err(self.fail(format!("{path}{field} must be an object"))),
        }
    }

    pub fn string<'a>(&self, parent: &'a Object, field: &str, path: &str) -> Result<Option<&'a str>, ApiError> {
        match parent.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.fail(format!("{path}{field} must be a string"))),
        }
    }

    pub fn required<'a>(&self, parent: &'a Object, field: &str, path: &str) -> Result<&'a str, ApiError> {
        self.string(parent, field, path)?.ok_or_else(|| self.fail(format!("{path}{field} is required")))
    }

    pub fn boolean(&self, parent: &Object, field: &str, path: &str) -> Result<Option<bool>, ApiError> {
        match parent.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.fail(format!("{path}{field} must be a boolean"))),
        }
    }

    pub fn number(&self, parent: &Object, field: &str, path: &str) -> Result<Option<f64>, ApiError> {
        match parent.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(_) => Err(self.fail(format!("{path}{field} must be a number"))),
        }
    }

    pub fn array<'a>(&self, parent: &'a Object, field: &str, path: &str) -> Result<Option<&'a Vec<Value>>, ApiError> {
        match parent.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(_) => Err(self.fail(format!("{path}{field} must be a list"))),
        }
    }
}
