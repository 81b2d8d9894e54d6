//! Errors over HTTP (API.md 16): inside a PostgREST request, every error the
//! extension raises becomes PostgREST's custom error (SQLSTATE `PGRST`),
//! whose message is the JSON body `{code, message, details, hint}` (the
//! SQLSTATE as `code`) and whose detail is `{status, headers}`. Pure: the
//! status and headers of a SQLSTATE, and the two JSON texts.

use serde_json::{json, Map, Value};

/// How long a client waits before a retry (`Retry-After`, seconds).
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// The HTTP status of one of our SQLSTATEs, and the headers that go with it.
pub fn status(sqlstate: &str) -> (u16, Vec<(&'static str, String)>) {
    let retry = || vec![("Retry-After", RETRY_AFTER_SECONDS.to_string())];
    match sqlstate {
        "28000" | "PT401" => (
            401,
            vec![(
                "WWW-Authenticate",
                r#"Bearer error="invalid_token""#.to_string(),
            )],
        ),
        "42501" | "PT403" => (403, Vec::new()),
        "P0002" => (404, Vec::new()),
        "23505" => (409, Vec::new()),
        "PT429" => (429, retry()),
        "55P03" => (503, retry()),
        s if s.starts_with("22") => (400, Vec::new()),
        _ => (500, Vec::new()),
    }
}

/// The custom error's message: the response body PostgREST sends.
pub fn body(sqlstate: &str, message: &str, detail: Option<&str>, hint: Option<&str>) -> String {
    json!({"code": sqlstate, "message": message, "details": detail, "hint": hint}).to_string()
}

/// The custom error's detail: the response's status and headers.
pub fn response(sqlstate: &str) -> String {
    let (status, headers) = status(sqlstate);
    let headers: Map<String, Value> = headers
        .into_iter()
        .map(|(k, v)| (k.to_string(), Value::String(v)))
        .collect();
    json!({"status": status, "headers": headers}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_has_its_status() {
        for (state, want) in [
            ("28000", 401),
            ("PT401", 401),
            ("42501", 403),
            ("PT403", 403),
            ("P0002", 404),
            ("22023", 400),
            ("22P02", 400),
            ("23505", 409),
            ("PT429", 429),
            ("55P03", 503),
            ("55000", 500),
        ] {
            assert_eq!(status(state).0, want, "{state}");
        }
        let r: Value = serde_json::from_str(&response("28000")).unwrap();
        assert_eq!(r["status"], 401);
        assert_eq!(
            r["headers"]["WWW-Authenticate"],
            r#"Bearer error="invalid_token""#
        );
        let r: Value = serde_json::from_str(&response("55P03")).unwrap();
        assert_eq!(
            (r["status"].as_u64(), r["headers"]["Retry-After"].as_str()),
            (Some(503), Some("1"))
        );
        assert_eq!(
            serde_json::from_str::<Value>(&response("42501")).unwrap()["headers"],
            json!({})
        );
    }

    #[test]
    fn the_body_is_postgrests_error_shape() {
        let b: Value =
            serde_json::from_str(&body("P0002", "user \"x\" does not exist", None, Some("h")))
                .unwrap();
        assert_eq!(
            b,
            json!({"code": "P0002", "message": "user \"x\" does not exist", "details": null, "hint": "h"})
        );
    }
}
