//! Claims building for Supabase Auth's custom access token hook (API.md
//! section 2), and the check of Supabase Auth's minimum claims schema. Pure:
//! the glue looks the user up and passes the row in.
//!
//! Source of truth is identity.users (`UserRow`), never `user_metadata`,
//! which any user can edit about themselves.

use serde_json::{Map, Value};

/// Events over this many bytes (as JSON text) are refused with 400.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;

/// A user's status: identity.users.status, or `Deleted` for a tombstone
/// (identity.deleted_users). Only `Active` authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserStatus {
    Active,
    Suspended,
    Disabled,
    Deleted,
}

impl UserStatus {
    /// The column's text; anything else (the table's check forbids it) is
    /// `Disabled`: it fails closed, never active.
    pub fn parse(s: &str) -> UserStatus {
        match s {
            "active" => UserStatus::Active,
            "suspended" => UserStatus::Suspended,
            "deleted" => UserStatus::Deleted,
            _ => UserStatus::Disabled,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Suspended => "suspended",
            UserStatus::Disabled => "disabled",
            UserStatus::Deleted => "deleted",
        }
    }

    pub fn is_active(self) -> bool {
        self == UserStatus::Active
    }
}

impl std::fmt::Display for UserStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user's role (identity.users.user_role).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserRole {
    Admin,
    User,
    System,
}

impl UserRole {
    /// The column's text; anything else (the table's check forbids it) is
    /// `User`: the least privilege.
    pub fn parse(s: &str) -> UserRole {
        match s {
            "admin" => UserRole::Admin,
            "system" => UserRole::System,
            _ => UserRole::User,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            UserRole::Admin => "admin",
            UserRole::User => "user",
            UserRole::System => "system",
        }
    }
}

/// What the hook needs from identity.users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub is_service_user: bool,
    pub user_role: UserRole,
    pub organization_id: Option<String>,
    pub application_id: Option<String>,
    pub status: UserStatus,
}

impl UserRow {
    /// The organization as an id (None: no organization).
    pub fn org_id(&self) -> Option<super::ids::OrgId> {
        self.organization_id
            .as_deref()
            .and_then(uuid_bytes)
            .map(super::ids::OrgId)
    }
}

/// The hook's answer: claims, or an error object with an HTTP code.
#[derive(Debug, Clone, PartialEq)]
pub enum HookOutcome {
    Claims(Map<String, Value>),
    Error { http_code: u16, message: String },
}

impl HookOutcome {
    pub fn bad(message: impl Into<String>) -> Self {
        HookOutcome::Error {
            http_code: 400,
            message: message.into(),
        }
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
    is_uuid_shape(s).then(|| s.to_ascii_lowercase())
}

/// 8-4-4-4-12 hex digits (either case).
fn is_uuid_shape(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The 16 bytes of a uuid in the hyphenated form (either case), without
/// an allocation: `uuid_bytes(&canonical_uuid(s)?)` for the hot paths.
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    /// A hex digit's value, 0xFF for any other byte.
    static HEX: [u8; 256] = {
        let mut t = [0xFFu8; 256];
        let mut i = 0;
        while i < 10 {
            t[b'0' as usize + i] = i as u8;
            i += 1;
        }
        let mut i = 0;
        while i < 6 {
            t[b'a' as usize + i] = 10 + i as u8;
            t[b'A' as usize + i] = 10 + i as u8;
            i += 1;
        }
        t
    };
    /// Where each byte's two digits start.
    const AT: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
    let b: &[u8; 36] = s.as_bytes().try_into().ok()?;
    if b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
        return None;
    }
    let mut out = [0u8; 16];
    // Any non-digit sets bit 7 of `bad` (0xFF entries).
    let mut bad = 0u8;
    for (o, &at) in out.iter_mut().zip(AT.iter()) {
        let (hi, lo) = (HEX[b[at] as usize], HEX[b[at + 1] as usize]);
        bad |= hi | lo;
        *o = (hi << 4) | (lo & 0x0F);
    }
    (bad & 0x80 == 0).then_some(out)
}

/// The 16 bytes of a canonical uuid string (see `canonical_uuid`).
pub fn uuid_bytes(canonical: &str) -> Option<[u8; 16]> {
    fn nibble(c: u8) -> Option<u8> {
        (c as char).to_digit(16).map(|d| d as u8)
    }
    let mut hex = canonical.bytes().filter(|b| *b != b'-');
    let mut out = [0u8; 16];
    for byte in out.iter_mut() {
        *byte = (nibble(hex.next()?)? << 4) | nibble(hex.next()?)?;
    }
    hex.next().is_none().then_some(out)
}

/// A version-4 uuid from 16 random bytes (RFC 9562: version and variant bits set).
pub fn uuid_v4(mut b: [u8; 16]) -> [u8; 16] {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    b
}

/// Canonical text of 16 uuid bytes.
pub fn uuid_text(b: &[u8; 16]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // Into a fixed array, then one copy (a push per char checked capacity
    // and encoded a char each time).
    let mut out = [b'-'; 36];
    let mut at = 0;
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            at += 1;
        }
        out[at] = HEX[(x >> 4) as usize];
        out[at + 1] = HEX[(x & 15) as usize];
        at += 2;
    }
    std::str::from_utf8(&out)
        .expect("hex digits and dashes")
        .to_owned()
}

/// Checks the event's shape. `event_len` is the size of its JSON text (the
/// SQL function passes the binary jsonb size).
pub fn parse_event(event: Value, event_len: usize) -> Result<Event, HookOutcome> {
    check_size(event_len)?;
    let mut obj = match event {
        Value::Object(m) => m,
        _ => return Err(HookOutcome::bad("event must be a JSON object")),
    };
    let user_id = check_event(
        obj.get("user_id").map(|v| (shape_of(v), v.as_str())),
        obj.get("metadata").map(shape_of),
        obj.get("authentication_method").map(shape_of),
        obj.get("claims").map(shape_of),
    )?;
    match obj.remove("claims") {
        Some(Value::Object(claims)) => Ok(Event { user_id, claims }),
        _ => unreachable!("check_event accepted claims only as an object"),
    }
}

/// Refuses events over `MAX_EVENT_BYTES`.
pub fn check_size(event_len: usize) -> Result<(), HookOutcome> {
    if event_len > MAX_EVENT_BYTES {
        return Err(HookOutcome::bad(format!(
            "event too large: {event_len} bytes, limit {MAX_EVENT_BYTES}"
        )));
    }
    Ok(())
}

/// The event-level checks, over the shapes of the event's members (None:
/// absent). `user_id` carries its text when it is a string. Returns the
/// canonical user id.
pub fn check_event(
    user_id: Option<(Shape, Option<&str>)>,
    metadata: Option<Shape>,
    method: Option<Shape>,
    claims: Option<Shape>,
) -> Result<String, HookOutcome> {
    let user_id = match user_id {
        Some((Shape::String, Some(s))) => {
            canonical_uuid(s).ok_or_else(|| HookOutcome::bad("user_id is not a uuid"))?
        }
        Some(_) => return Err(HookOutcome::bad("user_id must be a string uuid")),
        None => return Err(HookOutcome::bad("user_id is missing")),
    };
    if !matches!(metadata, None | Some(Shape::Object) | Some(Shape::Null)) {
        return Err(HookOutcome::bad("metadata must be an object"));
    }
    if !matches!(method, None | Some(Shape::String) | Some(Shape::Null)) {
        return Err(HookOutcome::bad("authentication_method must be a string"));
    }
    match claims {
        Some(Shape::Object) => Ok(user_id),
        Some(_) => Err(HookOutcome::bad("claims must be an object")),
        None => Err(HookOutcome::bad("claims is missing")),
    }
}

/// The JSON type of a claim as the schema check sees it. Both the serde path
/// (`shape_of`) and the jsonb-native path in the glue describe claims this
/// way, so one decision procedure (`check_shapes`) serves both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Null,
    Bool,
    /// A number with no fractional part.
    Integer,
    Number,
    String,
    Object,
    /// `strings`: every element is a string. `amr`: every element is a
    /// string or an object with a string `method` (and an integer
    /// `timestamp` when present).
    Array {
        strings: bool,
        amr: bool,
    },
}

/// The claims `check_shapes` looks at; every other claim passes untouched.
pub const SCHEMA_KEYS: [&str; 18] = [
    "aud",
    "exp",
    "iat",
    "sub",
    "email",
    "phone",
    "role",
    "session_id",
    "aal",
    "is_anonymous",
    "iss",
    "jti",
    "client_id",
    "scope",
    "nbf",
    "app_metadata",
    "user_metadata",
    "amr",
];

/// Position of `k` in SCHEMA_KEYS (a match on bytes: no UTF-8 check, no scan).
pub fn schema_index(k: &[u8]) -> Option<usize> {
    Some(match k {
        b"aud" => 0,
        b"exp" => 1,
        b"iat" => 2,
        b"sub" => 3,
        b"email" => 4,
        b"phone" => 5,
        b"role" => 6,
        b"session_id" => 7,
        b"aal" => 8,
        b"is_anonymous" => 9,
        b"iss" => 10,
        b"jti" => 11,
        b"client_id" => 12,
        b"scope" => 13,
        b"nbf" => 14,
        b"app_metadata" => 15,
        b"user_metadata" => 16,
        b"amr" => 17,
        _ => return None,
    })
}

/// True for the claims the hook owns (`OUR_KEYS`).
pub fn is_our_key(k: &[u8]) -> bool {
    matches!(
        k,
        b"is_service_user" | b"user_role" | b"organization_id" | b"application_id"
    )
}

/// Postgres' order of jsonb object keys: shorter first, then bytewise. A
/// builder that pushes keys in this order lets jsonb's final key sort find
/// them already sorted.
pub fn jsonb_key_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// A claim the hook adds, in `Additions::in_jsonb_order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddedValue<'a> {
    Bool(bool),
    Str(&'a str),
    Null,
}

/// The claims the hook owns: always overwritten, never taken from input.
pub const OUR_KEYS: [&str; 4] = [
    "is_service_user",
    "user_role",
    "organization_id",
    "application_id",
];

/// JSON Schema's "integer": a number whose fractional part is zero (1.0 counts).
fn is_integer(v: &Value) -> bool {
    v.as_i64().is_some()
        || v.as_u64().is_some()
        || v.as_f64()
            .is_some_and(|f| f.is_finite() && f.fract() == 0.0)
}

/// `Shape` of a serde value.
pub fn shape_of(v: &Value) -> Shape {
    match v {
        Value::Null => Shape::Null,
        Value::Bool(_) => Shape::Bool,
        Value::Number(_) if is_integer(v) => Shape::Integer,
        Value::Number(_) => Shape::Number,
        Value::String(_) => Shape::String,
        Value::Object(_) => Shape::Object,
        Value::Array(a) => Shape::Array {
            strings: a.iter().all(Value::is_string),
            amr: a.iter().all(|e| match e {
                Value::String(_) => true,
                Value::Object(o) => {
                    o.get("method").is_some_and(Value::is_string)
                        && o.get("timestamp").is_none_or(is_integer)
                }
                _ => false,
            }),
        },
    }
}

/// Supabase Auth's minimum claims schema: required fields with their JSON
/// types, and the types of optional fields when present. `shape(k)` gives the
/// shape of claim `k` (None when absent); `aal` is the aal claim's text when
/// it is a string. Returns the first violation.
pub fn check_shapes(
    shape: impl Fn(&str) -> Option<Shape>,
    aal: Option<&str>,
) -> Result<(), String> {
    match shape("aud") {
        Some(Shape::String) | Some(Shape::Array { strings: true, .. }) => {}
        Some(_) => return Err("aud must be a string or an array of strings".into()),
        None => return Err("aud is required".into()),
    }
    for k in ["exp", "iat"] {
        match shape(k) {
            Some(Shape::Integer) => {}
            Some(_) => return Err(format!("{k} must be an integer")),
            None => return Err(format!("{k} is required")),
        }
    }
    for k in ["sub", "email", "phone", "role", "session_id"] {
        match shape(k) {
            Some(Shape::String) => {}
            Some(_) => return Err(format!("{k} must be a string")),
            None => return Err(format!("{k} is required")),
        }
    }
    match (shape("aal"), aal) {
        (Some(Shape::String), Some("aal1" | "aal2" | "aal3")) => {}
        (Some(_), _) => return Err("aal must be one of aal1, aal2, aal3".into()),
        (None, _) => return Err("aal is required".into()),
    }
    match shape("is_anonymous") {
        Some(Shape::Bool) => {}
        Some(_) => return Err("is_anonymous must be a boolean".into()),
        None => return Err("is_anonymous is required".into()),
    }
    for k in ["iss", "jti", "client_id", "scope"] {
        if shape(k).is_some_and(|s| s != Shape::String) {
            return Err(format!("{k} must be a string"));
        }
    }
    if shape("nbf").is_some_and(|s| s != Shape::Integer) {
        return Err("nbf must be an integer".into());
    }
    for k in ["app_metadata", "user_metadata"] {
        if shape(k).is_some_and(|s| s != Shape::Object) {
            return Err(format!("{k} must be an object"));
        }
    }
    if shape("amr").is_some_and(|s| !matches!(s, Shape::Array { amr: true, .. })) {
        return Err("amr must be an array of {method, timestamp} entries".into());
    }
    Ok(())
}

/// `check_shapes` over a serde claims object.
pub fn check_supabase_schema(c: &Map<String, Value>) -> Result<(), String> {
    check_shapes(
        |k| c.get(k).map(shape_of),
        c.get("aal").and_then(Value::as_str),
    )
}

/// The claims the hook adds, decided from the user's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Additions {
    pub is_service_user: bool,
    pub user_role: String,
    pub organization_id: Option<String>,
    /// Present (possibly null) for service users only.
    pub application_id: Option<Option<String>>,
}

impl Additions {
    /// Our claims as (key, value), sorted in jsonb key order.
    pub fn in_jsonb_order(&self) -> Vec<(&'static str, AddedValue<'_>)> {
        fn opt(o: &Option<String>) -> AddedValue<'_> {
            o.as_deref().map_or(AddedValue::Null, AddedValue::Str)
        }
        let mut v = vec![
            ("user_role", AddedValue::Str(&self.user_role)),
            ("is_service_user", AddedValue::Bool(self.is_service_user)),
            ("organization_id", opt(&self.organization_id)),
        ];
        if let Some(app) = &self.application_id {
            v.push(("application_id", opt(app)));
        }
        v.sort_by(|a, b| jsonb_key_order(a.0.as_bytes(), b.0.as_bytes()));
        v
    }
}

/// What to add for `user` (None: no row), or the 403 for an inactive user.
pub fn additions(user: Option<&UserRow>) -> Result<Additions, HookOutcome> {
    match user {
        None => Ok(Additions {
            is_service_user: false,
            user_role: "user".into(),
            organization_id: None,
            application_id: None,
        }),
        Some(u) if !u.status.is_active() => Err(HookOutcome::Error {
            http_code: 403,
            message: format!("user is {}", u.status),
        }),
        Some(u) => Ok(Additions {
            is_service_user: u.is_service_user,
            user_role: u.user_role.as_str().into(),
            organization_id: u.organization_id.clone(),
            application_id: u.is_service_user.then(|| u.application_id.clone()),
        }),
    }
}

/// The claims of an access token the extension issues itself
/// (issue_access_token, exchange_api_token): what Supabase Auth would put in
/// one (aud, sub, role `authenticated`, email, phone, aal1, amr, session_id,
/// is_anonymous) plus exactly what the hook adds. None for an inactive user.
pub fn access_token_claims(
    sub: &str,
    email: &str,
    user: Option<&UserRow>,
    audience: &str,
    session_id: &str,
    amr_method: &str,
    now: i64,
) -> Option<Map<String, Value>> {
    let add = additions(user).ok()?;
    let mut c = Map::new();
    c.insert("aud".into(), Value::from(audience));
    c.insert("sub".into(), Value::from(sub));
    c.insert("role".into(), Value::from("authenticated"));
    c.insert("email".into(), Value::from(email));
    c.insert("phone".into(), Value::from(""));
    c.insert("aal".into(), Value::from("aal1"));
    c.insert(
        "amr".into(),
        serde_json::json!([{"method": amr_method, "timestamp": now}]),
    );
    c.insert("session_id".into(), Value::from(session_id));
    c.insert("is_anonymous".into(), Value::Bool(false));
    c.insert("is_service_user".into(), Value::Bool(add.is_service_user));
    c.insert("user_role".into(), Value::from(add.user_role));
    c.insert(
        "organization_id".into(),
        add.organization_id.map_or(Value::Null, Value::from),
    );
    if let Some(app) = add.application_id {
        c.insert(
            "application_id".into(),
            app.map_or(Value::Null, Value::from),
        );
    }
    Some(c)
}

/// The 400 answer for claims that fail the schema.
pub fn schema_error(why: String) -> HookOutcome {
    HookOutcome::bad(format!(
        "claims do not satisfy Supabase Auth's schema: {why}"
    ))
}

/// Adds our claims to the event's claims (the reference implementation; the
/// SQL function takes a jsonb-native path that a differential test holds
/// equal to this). Every input claim is kept except our own keys, which are
/// always overwritten (a client cannot pre-seed them); `role` (the Postgres
/// role) is never touched.
pub fn build(event: Event, user: Option<&UserRow>) -> HookOutcome {
    let add = match additions(user) {
        Ok(a) => a,
        Err(o) => return o,
    };
    let mut c = event.claims;
    for k in OUR_KEYS {
        c.remove(k);
    }
    if let Err(why) = check_supabase_schema(&c) {
        return schema_error(why);
    }
    c.insert("is_service_user".into(), Value::Bool(add.is_service_user));
    c.insert("user_role".into(), Value::String(add.user_role));
    c.insert(
        "organization_id".into(),
        add.organization_id.map_or(Value::Null, Value::String),
    );
    if let Some(app) = add.application_id {
        c.insert(
            "application_id".into(),
            app.map_or(Value::Null, Value::String),
        );
    }
    HookOutcome::Claims(c)
}

#[cfg(test)]
mod tests {
    #[test]
    fn parse_uuid_takes_either_case_and_nothing_else() {
        let u = "0B9F1C9E-3d0b-4b8e-9a55-1f2e3d4c5b6a";
        assert_eq!(parse_uuid(u), uuid_bytes(&canonical_uuid(u).unwrap()));
        for bad in [
            "",
            "0b9f1c9e3d0b4b8e9a551f2e3d4c5b6a",
            "0b9f1c9e-3d0b-4b8e-9a55-1f2e3d4c5b6g",
            "0b9f1c9e-3d0b-4b8e-9a55-1f2e3d4c5b6a0",
        ] {
            assert_eq!(parse_uuid(bad), None, "{bad}");
        }
    }

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
            user_role: UserRole::parse(role),
            organization_id: Some("00000000-0000-0000-0000-00000000000a".into()),
            application_id: Some("00000000-0000-0000-0000-0000000000ap".replace("ap", "bb")),
            status: UserStatus::parse(status),
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
                HookOutcome::Error {
                    http_code: 403,
                    message,
                } => assert!(message.contains(s)),
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
        assert!(matches!(
            parse_event(event(claims()), len),
            Err(HookOutcome::Error { http_code: 400, .. })
        ));
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
            ("aud", json!(5)),
            ("aud", json!([1])),
            ("exp", json!("1")),
            ("exp", json!(1.5)),
            ("iat", Value::Null),
            ("sub", json!(1)),
            ("email", Value::Null),
            ("phone", json!(false)),
            ("role", json!({})),
            ("aal", json!("aal9")),
            ("session_id", json!(1)),
            ("is_anonymous", json!("false")),
            ("amr", json!("password")),
            ("amr", json!([{"timestamp": 1}])),
            ("app_metadata", json!([])),
            ("user_metadata", json!("x")),
            ("iss", json!(1)),
            ("nbf", json!("x")),
        ];
        for (k, v) in breakages {
            let mut cl = claims();
            cl[*k] = v.clone();
            match run(event(cl), None) {
                HookOutcome::Error {
                    http_code: 400,
                    message,
                } => assert!(message.contains(k), "{k}: {message}"),
                o => panic!("{k}={v}: {o:?}"),
            }
        }
        for k in [
            "aud",
            "exp",
            "iat",
            "sub",
            "email",
            "phone",
            "role",
            "aal",
            "session_id",
            "is_anonymous",
        ] {
            let mut cl = claims();
            cl.as_object_mut().unwrap().remove(k);
            assert!(
                matches!(
                    run(event(cl), None),
                    HookOutcome::Error { http_code: 400, .. }
                ),
                "missing {k}"
            );
        }
    }

    #[test]
    fn integers_follow_json_schema() {
        for (v, int) in [
            (json!(1), true),
            (json!(-3), true),
            (json!(1.0), true),
            (json!(1e20), true),
            (json!(1.5), false),
            (json!(u64::MAX), true),
        ] {
            assert_eq!(shape_of(&v) == Shape::Integer, int, "{v}");
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
        let j = HookOutcome::Error {
            http_code: 403,
            message: "user is suspended".into(),
        }
        .into_json();
        assert_eq!(
            j,
            json!({"error": {"http_code": 403, "message": "user is suspended"}})
        );
        let j = run(event(claims()), None).into_json();
        assert!(j["claims"].is_object());
    }

    #[test]
    fn schema_index_finds_every_schema_key() {
        for (i, k) in SCHEMA_KEYS.iter().enumerate() {
            assert_eq!(schema_index(k.as_bytes()), Some(i));
        }
        assert_eq!(schema_index(b"user_role"), None);
        for k in OUR_KEYS {
            assert!(is_our_key(k.as_bytes()));
            assert_eq!(schema_index(k.as_bytes()), None);
        }
        assert!(!is_our_key(b"role"));
    }

    #[test]
    fn additions_come_in_jsonb_key_order() {
        use std::cmp::Ordering::Less;
        assert_eq!(jsonb_key_order(b"zz", b"aaa"), Less, "shorter first");
        assert_eq!(jsonb_key_order(b"aab", b"aac"), Less);
        let a = additions(Some(&row("user", true, "active"))).unwrap();
        let keys: Vec<&str> = a.in_jsonb_order().iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            [
                "user_role",
                "application_id",
                "is_service_user",
                "organization_id"
            ]
        );
        let a = additions(None).unwrap();
        assert_eq!(a.in_jsonb_order().len(), 3);
    }

    #[test]
    fn issued_claims_satisfy_supabase_schema_once_exp_and_iat_are_added() {
        let mut c = access_token_claims(
            UID,
            "a@x",
            Some(&row("admin", false, "active")),
            "authenticated",
            UID,
            "password",
            10,
        )
        .unwrap();
        c.insert("exp".into(), json!(20));
        c.insert("iat".into(), json!(10));
        assert_eq!(check_supabase_schema(&c), Ok(()));
        assert_eq!(c["user_role"], "admin");
        assert_eq!(c["amr"][0]["method"], "password");
        assert!(access_token_claims(
            UID,
            "a@x",
            Some(&row("user", false, "suspended")),
            "a",
            UID,
            "x",
            0
        )
        .is_none());
        let svc = access_token_claims(
            UID,
            "a@x",
            Some(&row("user", true, "active")),
            "a",
            UID,
            "x",
            0,
        )
        .unwrap();
        assert!(svc.contains_key("application_id"));
    }

    #[test]
    fn uuid_v4_sets_version_and_variant() {
        let t = uuid_text(&uuid_v4([0xff; 16]));
        assert_eq!(t, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        let t = uuid_text(&uuid_v4([0; 16]));
        assert_eq!(t, "00000000-0000-4000-8000-000000000000");
    }

    #[test]
    fn uuid_bytes_round_trip() {
        let b = uuid_bytes(UID).unwrap();
        assert_eq!(b[0], 0x8c);
        assert_eq!(uuid_text(&b), UID);
        // Every byte value in every position, against the formatter.
        for v in 0..=255u8 {
            let mut b = [0u8; 16];
            for (i, x) in b.iter_mut().enumerate() {
                *x = v.wrapping_add(i as u8 * 17);
            }
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            let want = format!(
                "{}-{}-{}-{}-{}",
                &hex[..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..]
            );
            assert_eq!(uuid_text(&b), want);
        }
        assert!(uuid_bytes("8ccaa7af-909f-44e7-84cb-67cdccb56bz6").is_none());
    }

    #[test]
    fn uuids_are_canonicalised() {
        assert_eq!(
            canonical_uuid("8CCAA7AF-909F-44E7-84CB-67CDCCB56BE6").as_deref(),
            Some(UID)
        );
        for bad in [
            "",
            "8ccaa7af909f44e784cb67cdccb56be6",
            "8ccaa7af-909f-44e7-84cb-67cdccb56bg6",
            "é",
        ] {
            assert!(canonical_uuid(bad).is_none(), "{bad}");
        }
    }
}
