//! Claims building for Supabase Auth's custom access token hook (API.md
//! section 2), and the check of Supabase Auth's minimum claims schema. Pure:
//! the glue looks the user up and passes the row in.
//!
//! Source of truth is identity.users (`UserRow`), never `user_metadata`,
//! which any user can edit about themselves.

use serde_json::{Map, Value};

/// Events over this many bytes (as JSON text) are refused with 400.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;

/// What the hook needs from identity.users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub is_service_user: bool,
    pub user_role: String,
    pub organization_id: Option<String>,
    pub application_id: Option<String>,
    pub status: String,
}

/// The hook's answer: claims, or an error object with an HTTP code.
#[derive(Debug, Clone, PartialEq)]
pub enum HookOutcome {
    Claims(Map<String, Value>),
    Error { http_code: u16, message: String },
}

impl HookOutcome {
    fn bad(message: impl Into<String>) -> Self {
        HookOutcome::Error { http_code: 400, message: message.into() }
    }

    /// The JSON Supabase Auth expects back.
    pub fn into_json(self) -> Value {
        match self {
            HookOutcome::Claims(c) => {
                let mut m = Map::with_capacity(1);
                m.insert("claims".into(), Value::Object(c));
                Value::Object(m)
            }
            HookOutcome::Error { http_code, message } => serde_json::json!({
                "error": { "http_code": http_code, "message": message }
            }),
        }
    }
}

/// A well-formed event: the user id (canonical lowercase uuid text) and claims.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub user_id: String,
    pub claims: Map<String, Value>,
}

/// Canonical form of a uuid string (hyphenated, lowercase), or None.
pub fn canonical_uuid(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if b.len() != 36 {
        return None;
    }
    for (i, c) in b.iter().enumerate() {
        let ok = match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        };
        if !ok {
            return None;
        }
    }
    Some(s.to_ascii_lowercase())
}

/// An upper-bound-ish estimate of a value's JSON text size, without
/// serialising it (strings and keys count their bytes plus quotes, every
/// scalar a few bytes): what the hook's size limit is checked against.
pub fn approx_json_size(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 20,
        Value::String(s) => s.len() + 2,
        Value::Array(a) => 2 + a.iter().map(|e| approx_json_size(e) + 1).sum::<usize>(),
        Value::Object(o) => 2 + o.iter().map(|(k, e)| k.len() + 4 + approx_json_size(e)).sum::<usize>(),
    }
}

/// Checks the event's shape. `event_len` is the size of its JSON text
/// (`approx_json_size` where the text is not at hand).
pub fn parse_event(event: Value, event_len: usize) -> Result<Event, HookOutcome> {
    if event_len > MAX_EVENT_BYTES {
        return Err(HookOutcome::bad(format!("event too large: {event_len} bytes, limit {MAX_EVENT_BYTES}")));
    }
    let mut obj = match event {
        Value::Object(m) => m,
        _ => return Err(HookOutcome::bad("event must be a JSON object")),
    };
    let user_id = match obj.get("user_id") {
        Some(Value::String(s)) => canonical_uuid(s).ok_or_else(|| HookOutcome::bad("user_id is not a uuid"))?,
        Some(_) => return Err(HookOutcome::bad("user_id must be a string uuid")),
        None => return Err(HookOutcome::bad("user_id is missing")),
    };
    match obj.get("metadata") {
        None | Some(Value::Object(_)) | Some(Value::Null) => {}
        Some(_) => return Err(HookOutcome::bad("metadata must be an object")),
    }
    match obj.get("authentication_method") {
        None | Some(Value::String(_)) | Some(Value::Null) => {}
        Some(_) => return Err(HookOutcome::bad("authentication_method must be a string")),
    }
    let claims = match obj.remove("claims") {
        Some(Value::Object(c)) => c,
        Some(_) => return Err(HookOutcome::bad("claims must be an object")),
        None => return Err(HookOutcome::bad("claims is missing")),
    };
    Ok(Event { user_id, claims })
}

/// Supabase Auth's minimum claims schema: required fields with their JSON
/// types, and the types of optional fields when present. Returns the first
/// violation.
pub fn check_supabase_schema(c: &Map<String, Value>) -> Result<(), String> {
    fn is_int(v: &Value) -> bool {
        v.as_i64().is_some() || v.as_u64().is_some()
    }
    match c.get("aud") {
        Some(Value::String(_)) => {}
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {}
        Some(_) => return Err("aud must be a string or an array of strings".into()),
        None => return Err("aud is required".into()),
    }
    for k in ["exp", "iat"] {
        match c.get(k) {
            Some(v) if is_int(v) => {}
            Some(_) => return Err(format!("{k} must be an integer")),
            None => return Err(format!("{k} is required")),
        }
    }
    for k in ["sub", "email", "phone", "role", "session_id"] {
        match c.get(k) {
            Some(Value::String(_)) => {}
            Some(_) => return Err(format!("{k} must be a string")),
            None => return Err(format!("{k} is required")),
        }
    }
    match c.get("aal") {
        Some(Value::String(s)) if matches!(s.as_str(), "aal1" | "aal2" | "aal3") => {}
        Some(_) => return Err("aal must be one of aal1, aal2, aal3".into()),
        None => return Err("aal is required".into()),
    }
    match c.get("is_anonymous") {
        Some(Value::Bool(_)) => {}
        Some(_) => return Err("is_anonymous must be a boolean".into()),
        None => return Err("is_anonymous is required".into()),
    }
    // Optional claims keep their types.
    for k in ["iss", "jti", "client_id", "scope"] {
        if let Some(v) = c.get(k) {
            if !v.is_string() {
                return Err(format!("{k} must be a string"));
            }
        }
    }
    if let Some(v) = c.get("nbf") {
        if !is_int(v) {
            return Err("nbf must be an integer".into());
        }
    }
    for k in ["app_metadata", "user_metadata"] {
        if let Some(v) = c.get(k) {
            if !v.is_object() {
                return Err(format!("{k} must be an object"));
            }
        }
    }
    if let Some(v) = c.get("amr") {
        let ok = v.as_array().is_some_and(|a| {
            a.iter().all(|e| match e {
                Value::String(_) => true,
                Value::Object(o) => {
                    o.get("method").is_some_and(Value::is_string)
                        && o.get("timestamp").is_none_or(is_int)
                }
                _ => false,
            })
        });
        if !ok {
            return Err("amr must be an array of {method, timestamp} entries".into());
        }
    }
    Ok(())
}

/// Adds our claims to the event's claims. `user` is the identity.users row,
/// None when the user has none. Every input claim is kept except our own
/// keys, which are always overwritten (a client cannot pre-seed them);
/// `role` (the Postgres role) is never touched.
pub fn build(event: Event, user: Option<&UserRow>) -> HookOutcome {
    let mut c = event.claims;
    let (is_service, role, org, app) = match user {
        None => (false, "user", None, None),
        Some(u) => {
            if u.status != "active" {
                return HookOutcome::Error { http_code: 403, message: format!("user is {}", u.status) };
            }
            (u.is_service_user, u.user_role.as_str(), u.organization_id.clone(), u.application_id.clone())
        }
    };
    c.insert("is_service_user".into(), Value::Bool(is_service));
    c.insert("user_role".into(), Value::String(role.to_string()));
    c.insert("organization_id".into(), org.map_or(Value::Null, Value::String));
    if is_service {
        c.insert("application_id".into(), app.map_or(Value::Null, Value::String));
    } else {
        c.remove("application_id");
    }
    match check_supabase_schema(&c) {
        Ok(()) => HookOutcome::Claims(c),
        Err(why) => HookOutcome::bad(format!("claims do not satisfy Supabase Auth's schema: {why}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const UID: &str = "8ccaa7af-909f-44e7-84cb-67cdccb56be6";

    fn claims() -> Value {
        json!({
            "iss": "https://x.supabase.co/auth/v1", "aud": "authenticated",
            "exp": 1715690221, "iat": 1715686621, "sub": UID,
            "email": "ada@example.com", "phone": "",
            "app_metadata": {"provider": "email"},
            "user_metadata": {"is_service_user": true, "user_role": "admin"},
            "role": "authenticated", "aal": "aal1",
            "amr": [{"method": "password", "timestamp": 1715686621}],
            "session_id": "4b938a09-5372-4177-a314-cfa292099ea2", "is_anonymous": false
        })
    }

    fn event(c: Value) -> Value {
        json!({"user_id": UID, "claims": c, "authentication_method": "password",
               "metadata": {"uuid": UID, "time": "2024-05-14T11:37:01Z", "name": "customize-access-token", "ip_address": "127.0.0.1"}})
    }

    fn run(ev: Value, user: Option<&UserRow>) -> HookOutcome {
        let len = ev.to_string().len();
        match parse_event(ev, len) {
            Ok(e) => build(e, user),
            Err(o) => o,
        }
    }

    fn row(role: &str, service: bool, status: &str) -> UserRow {
        UserRow {
            is_service_user: service,
            user_role: role.into(),
            organization_id: Some("00000000-0000-0000-0000-00000000000a".into()),
            application_id: Some("00000000-0000-0000-0000-0000000000ap".replace("ap", "bb")),
            status: status.into(),
        }
    }

    fn claims_of(o: HookOutcome) -> Map<String, Value> {
        match o {
            HookOutcome::Claims(c) => c,
            e => panic!("expected claims, got {e:?}"),
        }
    }

    #[test]
    fn unknown_user_gets_defaults_and_keeps_every_claim() {
        let c = claims_of(run(event(claims()), None));
        for (k, v) in claims().as_object().unwrap() {
            assert_eq!(&c[k], v, "claim {k} changed");
        }
        assert_eq!(c["is_service_user"], false);
        assert_eq!(c["user_role"], "user");
        assert_eq!(c["organization_id"], Value::Null);
        assert!(!c.contains_key("application_id"));
    }

    #[test]
    fn user_metadata_cannot_make_a_service_user_or_admin() {
        let c = claims_of(run(event(claims()), Some(&row("user", false, "active"))));
        assert_eq!(c["is_service_user"], false);
        assert_eq!(c["user_role"], "user");
    }

    #[test]
    fn client_seeded_claims_are_overwritten() {
        let mut cl = claims();
        cl["is_service_user"] = json!(true);
        cl["user_role"] = json!("admin");
        cl["application_id"] = json!("spoof");
        cl["organization_id"] = json!("spoof");
        let c = claims_of(run(event(cl), None));
        assert_eq!(c["is_service_user"], false);
        assert_eq!(c["user_role"], "user");
        assert_eq!(c["organization_id"], Value::Null);
        assert!(!c.contains_key("application_id"));
    }

    #[test]
    fn service_user_gets_application_id_and_role_claim_is_untouched() {
        let c = claims_of(run(event(claims()), Some(&row("user", true, "active"))));
        assert_eq!(c["is_service_user"], true);
        assert_eq!(c["application_id"], "00000000-0000-0000-0000-0000000000bb");
        assert_eq!(c["organization_id"], "00000000-0000-0000-0000-00000000000a");
        assert_eq!(c["role"], "authenticated");
        let admin = claims_of(run(event(claims()), Some(&row("admin", false, "active"))));
        assert_eq!(admin["user_role"], "admin");
        assert_eq!(admin["role"], "authenticated");
    }

    #[test]
    fn suspended_and_disabled_users_are_denied_with_403() {
        for s in ["suspended", "disabled"] {
            match run(event(claims()), Some(&row("admin", false, s))) {
                HookOutcome::Error { http_code: 403, message } => assert!(message.contains(s)),
                o => panic!("{s}: {o:?}"),
            }
        }
    }

    #[test]
    fn malformed_events_are_400() {
        let cases = [
            json!([1, 2]),
            json!("str"),
            json!({"claims": claims()}),
            json!({"user_id": "nope", "claims": claims()}),
            json!({"user_id": 42, "claims": claims()}),
            json!({"user_id": UID}),
            json!({"user_id": UID, "claims": [1]}),
            json!({"user_id": UID, "claims": claims(), "metadata": "x"}),
            json!({"user_id": UID, "claims": claims(), "authentication_method": 7}),
        ];
        for ev in cases {
            match run(ev.clone(), None) {
                HookOutcome::Error { http_code: 400, .. } => {}
                o => panic!("{ev}: {o:?}"),
            }
        }
        let len = MAX_EVENT_BYTES + 1;
        assert!(matches!(parse_event(event(claims()), len), Err(HookOutcome::Error { http_code: 400, .. })));
    }

    #[test]
    fn metadata_may_be_absent_and_aud_may_be_an_array() {
        let mut cl = claims();
        cl["aud"] = json!(["authenticated", "websocket"]);
        let ev = json!({"user_id": UID.to_uppercase(), "claims": cl});
        let c = claims_of(run(ev, None));
        assert_eq!(c["aud"], json!(["authenticated", "websocket"]));
    }

    #[test]
    fn the_schema_check_catches_each_broken_field() {
        let breakages: &[(&str, Value)] = &[
            ("aud", json!(5)), ("aud", json!([1])), ("exp", json!("1")), ("exp", json!(1.5)),
            ("iat", Value::Null), ("sub", json!(1)), ("email", Value::Null), ("phone", json!(false)),
            ("role", json!({})), ("aal", json!("aal9")), ("session_id", json!(1)),
            ("is_anonymous", json!("false")), ("amr", json!("password")), ("amr", json!([{"timestamp": 1}])),
            ("app_metadata", json!([])), ("user_metadata", json!("x")), ("iss", json!(1)), ("nbf", json!("x")),
        ];
        for (k, v) in breakages {
            let mut cl = claims();
            cl[*k] = v.clone();
            match run(event(cl), None) {
                HookOutcome::Error { http_code: 400, message } => assert!(message.contains(k), "{k}: {message}"),
                o => panic!("{k}={v}: {o:?}"),
            }
        }
        for k in ["aud", "exp", "iat", "sub", "email", "phone", "role", "aal", "session_id", "is_anonymous"] {
            let mut cl = claims();
            cl.as_object_mut().unwrap().remove(k);
            assert!(matches!(run(event(cl), None), HookOutcome::Error { http_code: 400, .. }), "missing {k}");
        }
    }

    #[test]
    fn amr_accepts_rfc8176_strings_too() {
        let mut cl = claims();
        cl["amr"] = json!(["password", "otp"]);
        claims_of(run(event(cl), None));
    }

    #[test]
    fn output_json_shapes() {
        let j = HookOutcome::Error { http_code: 403, message: "user is suspended".into() }.into_json();
        assert_eq!(j, json!({"error": {"http_code": 403, "message": "user is suspended"}}));
        let j = run(event(claims()), None).into_json();
        assert!(j["claims"].is_object());
    }

    #[test]
    fn size_estimate_is_close_to_the_real_text() {
        let ev = event(claims());
        let real = ev.to_string().len();
        let est = approx_json_size(&ev);
        assert!(est >= real / 2 && est <= real * 2, "estimate {est} vs {real}");
        let big = json!({"user_id": UID, "claims": {"x": "a".repeat(MAX_EVENT_BYTES)}});
        assert!(approx_json_size(&big) > MAX_EVENT_BYTES);
    }

    #[test]
    fn uuids_are_canonicalised() {
        assert_eq!(canonical_uuid("8CCAA7AF-909F-44E7-84CB-67CDCCB56BE6").as_deref(), Some(UID));
        for bad in ["", "8ccaa7af909f44e784cb67cdccb56be6", "8ccaa7af-909f-44e7-84cb-67cdccb56bg6", "é"] {
            assert!(canonical_uuid(bad).is_none(), "{bad}");
        }
    }
}
