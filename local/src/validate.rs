//! Input checks the way AWS applies them (required members, lengths, patterns, enums, list sizes), each failure an
//! error naming the member and the rule, with the code and status of the service's validation error.

use regex::Regex;
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

    pub fn integer_in(
        &self,
        parent: &Object,
        field: &str,
        path: &str,
        min: i64,
        max: i64,
    ) -> Result<Option<i64>, ApiError> {
        let Some(n) = self.number(parent, field, path)? else { return Ok(None) };
        if n.fract() != 0.0 || n < min as f64 || n > max as f64 {
            return Err(self.fail(format!("{path}{field} must be a whole number from {min} to {max}, got {n}")));
        }
        Ok(Some(n as i64))
    }

    pub fn array<'a>(&self, parent: &'a Object, field: &str, path: &str) -> Result<Option<&'a Vec<Value>>, ApiError> {
        match parent.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(_) => Err(self.fail(format!("{path}{field} must be a list"))),
        }
    }

    /// A list of strings with a size range, each item checked by `item`.
    pub fn strings(
        &self,
        parent: &Object,
        field: &str,
        path: &str,
        (min, max): (usize, usize),
        item: impl Fn(&str) -> Result<(), String>,
    ) -> Result<(), ApiError> {
        let Some(items) = self.array(parent, field, path)? else { return Ok(()) };
        self.count(&format!("{path}{field}"), items.len(), min, max)?;
        for (i, v) in items.iter().enumerate() {
            let s = v.as_str().ok_or_else(|| self.fail(format!("{path}{field}[{i}] must be a string")))?;
            item(s).map_err(|rule| self.fail(format!("{path}{field}[{i}] {rule}")))?;
        }
        Ok(())
    }

    pub fn count(&self, what: &str, n: usize, min: usize, max: usize) -> Result<(), ApiError> {
        if n < min || n > max {
            return Err(self.fail(format!("{what} must have {min} to {max} items, got {n}")));
        }
        Ok(())
    }

    pub fn length(&self, what: &str, s: &str, min: usize, max: usize) -> Result<(), ApiError> {
        let n = s.chars().count();
        if n < min || n > max {
            return Err(self.fail(format!("{what} must be {min} to {max} characters long, got {n}")));
        }
        Ok(())
    }

    pub fn pattern(&self, what: &str, s: &str, re: &Regex) -> Result<(), ApiError> {
        if !re.is_match(s) {
            return Err(self.fail(format!("{what} `{s}` does not match {}", re.as_str())));
        }
        Ok(())
    }

    pub fn one_of(&self, what: &str, s: &str, allowed: &[&str]) -> Result<(), ApiError> {
        if !allowed.contains(&s) {
            return Err(self.fail(format!("{what} `{s}` is not one of {}", allowed.join(", "))));
        }
        Ok(())
    }
}

/// A `regex` compiled once.
#[macro_export]
macro_rules! regex {
    ($re:literal) => {{
        static RE: std::sync::LazyLock<regex::Regex> =
            std::sync::LazyLock::new(|| regex::Regex::new($re).expect("a valid literal pattern"));
        &*RE
    }};
}
