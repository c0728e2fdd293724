//! What changed in the emulated account between two state dumps, one line per changed leaf, for people to read.

use serde_json::Value;

/// `path: before → after` for every value that differs; `+ path = value` and `- path` for added and removed ones.
pub fn changes(before: &Value, after: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk("", before, after, &mut out);
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 120 { format!("{}…", text.chars().take(117).collect::<String>()) } else { text }
}

fn walk(path: &str, before: &Value, after: &Value, out: &mut Vec<String>) {
    match (before, after) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                match b.get(k) {
                    Some(vb) => walk(&join(path, k), va, vb, out),
                    None => out.push(format!("- {}", join(path, k))),
                }
            }
            for (k, vb) in b {
                if !a.contains_key(k) {
                    out.push(format!("+ {} = {}", join(path, k), short(vb)));
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (va, vb)) in a.iter().zip(b).enumerate() {
                walk(&format!("{path}[{i}]"), va, vb, out);
            }
            for (i, vb) in b.iter().enumerate().skip(a.len()) {
                out.push(format!("+ {path}[{i}] = {}", short(vb)));
            }
            for i in b.len()..a.len() {
                out.push(format!("- {path}[{i}]"));
            }
        }
        (a, b) if a != b => out.push(format!("{path}: {} → {}", short(a), short(b))),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn given_two_states_when_compared_then_changed_added_and_removed_leaves() {
        let before = json!({"regions": {"us-east-1": {"imageBuilders": {"b1": {"State": "STOPPED"}, "b2": {"State": "RUNNING"}}}}, "faults": []});
        let after = json!({"regions": {"us-east-1": {"imageBuilders": {"b1": {"State": "PENDING"}, "b3": {"State": "PENDING"}}}}, "faults": []});
        assert_eq!(
            changes(&before, &after),
            vec![
                "regions.us-east-1.imageBuilders.b1.State: \"STOPPED\" → \"PENDING\"",
                "- regions.us-east-1.imageBuilders.b2",
                "+ regions.us-east-1.imageBuilders.b3 = {\"State\":\"PENDING\"}",
            ]
        );
        assert!(changes(&before, &before).is_empty());
        let lists =
            changes(&json!({"d": [{"r": "a"}, {"r": "b"}]}), &json!({"d": [{"r": "a"}, {"r": "c"}, {"r": "d"}]}));
        assert_eq!(lists, vec!["d[1].r: \"b\" → \"c\"", "+ d[2] = {\"r\":\"d\"}"]);
        assert_eq!(changes(&json!({"d": [1, 2]}), &json!({"d": [1]})), vec!["- d[1]"]);
    }
}
