//! PostgREST requests (API.md section 8, `identity.pre_request`): which
//! credential a request's headers carry. Pure: the headers arrive as the JSON
//! text PostgREST puts in `request.headers` (names lower-cased).

use super::error::IdentityError;
use serde_json::Value;

/// `request.headers` larger than this is refused before it is parsed.
pub const MAX_HEADERS_BYTES: usize = 1 << 20;

/// The credential of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential<'a> {
    /// Neither header: the request stays anonymous.
    None,
    /// An opaque API token in `x-api-key`. PostgREST itself refuses an
    /// opaque token in `Authorization` (it is not a JWT), so API tokens come
    /// this way.
    ApiKey(&'a str),
    /// A JWT in `Authorization: Bearer` (scheme case-insensitive).
    Bearer(&'a str),
}

/// Reads the credential from the parsed headers. `x-api-key` wins over
/// `Authorization`: a Supabase client sends its anon key as a Bearer JWT on
/// every request, and the API key is the more specific credential.
/// Headers that are present but empty, not strings, or an `Authorization`
/// that is not `Bearer <token>` are refused (22023) rather than ignored, so
/// a client that meant to send a credential never silently runs anonymous.
pub fn credential(
    headers: &serde_json::Map<String, Value>,
) -> Result<Credential<'_>, IdentityError> {
    let header = |name: &'static str| -> Result<Option<&str>, IdentityError> {
        match headers.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim())),
            Some(_) => Err(
                IdentityError::invalid("a credential header is empty or not a string")
                    .detail(format!("header {name}")),
            ),
        }
    };
    if let Some(key) = header("x-api-key")? {
        return Ok(Credential::ApiKey(key));
    }
    if let Some(auth) = header("authorization")? {
        let (scheme, token) = auth.split_once(' ').unwrap_or((auth, ""));
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return Err(IdentityError::invalid(
                "the Authorization header is not \"Bearer <token>\"",
            ));
        }
        return Ok(Credential::Bearer(token));
    }
    Ok(Credential::None)
}

/// Parses `request.headers` (None: unset, no headers). Over
/// `MAX_HEADERS_BYTES`, or not a JSON object: 22023.
pub fn parse_headers(text: Option<&[u8]>) -> Result<serde_json::Map<String, Value>, IdentityError> {
    let Some(text) = text else {
        return Ok(serde_json::Map::new());
    };
    if text.len() > MAX_HEADERS_BYTES {
        return Err(
            IdentityError::invalid("request.headers is too large").detail(format!(
                "{} bytes, the limit is {MAX_HEADERS_BYTES}",
                text.len()
            )),
        );
    }
    match serde_json::from_slice::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(IdentityError::invalid(
            "request.headers is not a JSON object",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cred(v: Value) -> Result<Credential<'static>, IdentityError> {
        let m: &'static serde_json::Map<String, Value> =
            Box::leak(Box::new(v.as_object().unwrap().clone()));
        credential(m)
    }

    #[test]
    fn reads_the_credential() {
        assert_eq!(cred(json!({})).unwrap(), Credential::None);
        assert_eq!(cred(json!({"accept": "*/*"})).unwrap(), Credential::None);
        assert_eq!(
            cred(json!({"x-api-key": "idt_abc"})).unwrap(),
            Credential::ApiKey("idt_abc")
        );
        assert_eq!(
            cred(json!({"authorization": "Bearer a.b.c"})).unwrap(),
            Credential::Bearer("a.b.c")
        );
        assert_eq!(
            cred(json!({"authorization": "bearer  a.b.c "})).unwrap(),
            Credential::Bearer("a.b.c")
        );
        // The API key wins over the anon key a Supabase client always sends.
        assert_eq!(
            cred(json!({"authorization": "Bearer a.b.c", "x-api-key": "idt_abc"})).unwrap(),
            Credential::ApiKey("idt_abc")
        );
    }

    #[test]
    fn refuses_malformed_credentials() {
        for v in [
            json!({"x-api-key": ""}),
            json!({"x-api-key": "  "}),
            json!({"x-api-key": 5}),
            json!({"x-api-key": ["idt_abc"]}),
            json!({"authorization": "Basic dXNlcjpwdw=="}),
            json!({"authorization": "Bearer"}),
            json!({"authorization": "Bearer   "}),
            json!({"authorization": "a.b.c"}),
        ] {
            let e = cred(v.clone()).unwrap_err();
            assert_eq!(e.kind, super::super::error::Kind::InvalidArgument, "{v}");
            // The error never repeats the header's value.
            assert!(!format!("{e:?}").contains("dXNlcjpwdw"), "{v}");
        }
    }

    #[test]
    fn parses_headers_with_a_size_limit() {
        assert!(parse_headers(None).unwrap().is_empty());
        assert_eq!(parse_headers(Some(br#"{"a": "b"}"#)).unwrap()["a"], "b");
        assert!(parse_headers(Some(b"[1]")).is_err());
        assert!(parse_headers(Some(b"{")).is_err());
        let big = format!(r#"{{"a": "{}"}}"#, "x".repeat(MAX_HEADERS_BYTES));
        let e = parse_headers(Some(big.as_bytes())).unwrap_err();
        assert_eq!(e.message, "request.headers is too large");
    }
}
