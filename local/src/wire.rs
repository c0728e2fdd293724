//! What every emulated service shares on the wire: the request as a service sees it, API errors, and how each
//! protocol encodes a reply or an error.

use std::collections::BTreeMap;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use serde_json::Value;

/// The body of every response the server sends, whichever service (or `s3s`) produced it.
pub type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// A request as a service handler sees it: collected body, decoded query, the scope's region.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: http::Method,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    pub region: String,
    /// Milliseconds since the epoch, read once per request.
    pub now_ms: i64,
}

impl ApiRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// An error as AWS returns it: the modeled code (the SDK turns it into a typed variant), a message, the status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} ({status}): {message}")]
pub struct ApiError {
    pub code: String,
    pub message: String,
    pub status: u16,
}

impl ApiError {
    pub fn new(code: impl Into<String>, status: u16, message: impl Into<String>) -> Self {
        ApiError { code: code.into(), message: message.into(), status }
    }
}

/// A successful reply before its protocol encodes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: ReplyBody,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ReplyBody {
    /// A JSON document, encoded by the JSON protocols as is and by RPC v2 CBOR as CBOR.
    Json(Value),
    /// Bytes with their content type (CloudFront's XML).
    Raw {
        content_type: &'static str,
        bytes: Bytes,
    },
    Empty,
}

impl Reply {
    pub fn json(body: Value) -> Self {
        Reply { status: 200, headers: Vec::new(), body: ReplyBody::Json(body) }
    }

    pub fn xml(status: u16, xml: String) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: ReplyBody::Raw { content_type: "text/xml", bytes: Bytes::from(xml) },
        }
    }

    pub fn empty(status: u16) -> Self {
        Reply { status, headers: Vec::new(), body: ReplyBody::Empty }
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// An HTTP response ready to send: status, headers, body.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// Escapes text for an XML element or attribute.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_markup_when_escaped_then_safe_in_xml() {
        assert_eq!(xml_escape(r#"<a & "b">'"#), "&lt;a &amp; &quot;b&quot;&gt;&apos;");
    }
}
