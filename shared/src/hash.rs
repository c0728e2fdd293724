//! Stable hashes of payloads: canonical JSON (one form whatever the key order or spacing) and SHA-256 in hex.

use std::fmt::Write as _;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// JSON with object keys sorted at every level, no insignificant white space and numbers in one form, so that two
/// payloads that differ only in key order, spacing or how a number is written hash the same, whatever serde_json
/// features other crates switch on.
pub fn canonical_json(value: &Value) -> String {
    fn write(out: &mut String, value: &Value) {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, key) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(key.clone()).to_string());
                    out.push(':');
                    write(out, &map[key]);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(out, item);
                }
                out.push(']');
            }
            Value::Number(n) => out.push_str(&canonical_number(n)),
            scalar => out.push_str(&scalar.to_string()),
        }
    }
    let mut out = String::new();
    write(&mut out, value);
    out
}

/// A number as the request means it: `24`, `24.0` and `2.4e1` are one value, so one event id.
fn canonical_number(n: &serde_json::Number) -> String {
    match n.as_f64() {
        // Integral floats print as integers; below 2^53 the conversion is exact.
        Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => (f as i64).to_string(),
        _ => n.to_string(),
    }
}

/// The SHA-256 of `bytes`, in lowercase hex: event ids, client tokens and mark names.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for byte in digest {
        let _ = write!(out, "{byte:02x}");
    }
    out
}
