//! Bounds on what callers send, checked before any work (API.md
//! conventions: every input has a size limit; bad input is 22023, never a
//! crash or XX000). Pure.

use super::error::{IdentityError, Result};
use serde_json::Value;

/// A jsonb argument (update_user's and update_credential's `changes`):
/// at most this many bytes, in binary or as text.
pub const MAX_JSON_ARG_BYTES: usize = 64 * 1024;
/// ... and at most this many levels of nesting (serde_json stops at 128
/// with an error that is not the caller's to read).
pub const MAX_JSON_DEPTH: usize = 32;
/// A user's or organization's `metadata`, as JSON text.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
/// Scopes of a token or a request.
pub const MAX_SCOPES: usize = 50;

/// The deepest nesting of arrays and objects in JSON `text` (strings
/// skipped, escapes included); one pass, no allocation.
pub fn nesting_depth(text: &[u8]) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in text {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Parses a jsonb argument's text after its bounds: size (`what` names it
/// in the message) and depth; 22023 otherwise.
pub fn bounded_json(text: &[u8], what: &'static str) -> Result<Value> {
    if text.len() > MAX_JSON_ARG_BYTES {
        return Err(IdentityError::invalid(what).detail(format!(
            "{} bytes, the limit is {MAX_JSON_ARG_BYTES}",
            text.len()
        )));
    }
    let depth = nesting_depth(text);
    if depth > MAX_JSON_DEPTH {
        return Err(IdentityError::invalid(what).detail(format!(
            "nested {depth} levels deep, the limit is {MAX_JSON_DEPTH}"
        )));
    }
    serde_json::from_slice(text).map_err(|_| IdentityError::invalid(what).detail("not valid JSON"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_containers_not_strings() {
        assert_eq!(nesting_depth(b"1"), 0);
        assert_eq!(nesting_depth(br#"{"a": [1, {"b": 2}]}"#), 3);
        assert_eq!(nesting_depth(br#"{"a": "[[[[{{{{"}"#), 1);
        assert_eq!(
            nesting_depth(br#"{"a": "\"[[[", "b": []}"#),
            2,
            "an escaped quote does not end the string"
        );
        assert_eq!(
            nesting_depth(br#"["\\", [[]]]"#),
            3,
            "an escaped backslash does"
        );
    }

    #[test]
    fn deep_or_large_json_is_22023() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let e = bounded_json(deep.as_bytes(), "changes is too large or too deep").unwrap_err();
        assert_eq!(e.sqlstate(), "22023");
        assert!(e.detail.unwrap().contains("200 levels"));
        let ok = format!(
            "{}{}",
            "[".repeat(MAX_JSON_DEPTH),
            "]".repeat(MAX_JSON_DEPTH)
        );
        assert!(bounded_json(ok.as_bytes(), "x").is_ok());
        let big = format!(r#"{{"a": "{}"}}"#, "x".repeat(MAX_JSON_ARG_BYTES));
        assert_eq!(
            bounded_json(big.as_bytes(), "x").unwrap_err().sqlstate(),
            "22023"
        );
        assert_eq!(bounded_json(b"{", "x").unwrap_err().sqlstate(), "22023");
    }
}
