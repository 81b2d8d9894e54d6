//! Svix webhook signatures (what Clerk signs its webhooks with) and the
//! Clerk user events handle_webhook acts on. A delivery carries `svix-id`,
//! `svix-timestamp` (Unix seconds) and `svix-signature`: space-separated
//! `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` entries, keyed with the
//! bytes of the endpoint's `whsec_<base64>` secret.

use crate::error::{IdentityError, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

/// A delivery's timestamp may differ from now by at most this (Svix's own
/// tolerance): an older delivery is a replay.
pub const TOLERANCE_SECONDS: i64 = 300;
/// A body over this many bytes is refused before any work.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The key bytes of a `whsec_...` secret (the prefix is optional, as
/// Svix's libraries accept): 16 to 128 bytes of standard base64.
pub fn parse_secret(s: &str) -> Result<Vec<u8>> {
    let b64 = s.strip_prefix("whsec_").unwrap_or(s);
    match STANDARD.decode(b64) {
        Ok(k) if (16..=128).contains(&k.len()) => Ok(k),
        _ => Err(
            IdentityError::invalid("webhook_secret must be a Svix signing secret")
                .hint("whsec_ followed by base64, as the provider's dashboard shows it"),
        ),
    }
}

/// The `v1` signature of a delivery (base64), as Svix computes it.
pub fn sign(secret: &[u8], id: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Why a delivery is refused (28000; the reason goes in DETAIL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    MissingHeader,
    BadTimestamp,
    TooOld,
    TooNew,
    NoSignature,
    BadSignature,
}

impl Refusal {
    /// The reason code of the catalog (`crate::reason`).
    pub const fn code(self) -> crate::reason::Reason {
        use crate::reason::Reason;
        match self {
            Refusal::MissingHeader => Reason::MissingHeader,
            Refusal::BadTimestamp | Refusal::TooOld | Refusal::TooNew => Reason::BadTimestamp,
            Refusal::NoSignature | Refusal::BadSignature => Reason::BadSignature,
        }
    }

    pub const fn reason(self) -> &'static str {
        match self {
            Refusal::MissingHeader => "svix-id, svix-timestamp and svix-signature are required",
            Refusal::BadTimestamp => "svix-timestamp is not a Unix time",
            Refusal::TooOld => "svix-timestamp is more than 5 minutes old",
            Refusal::TooNew => "svix-timestamp is more than 5 minutes in the future",
            Refusal::NoSignature => "svix-signature holds no v1 signature",
            Refusal::BadSignature => "no signature matches",
        }
    }
}

/// Verifies one delivery: the id (1 to 255 printable bytes), the timestamp
/// within the tolerance of `now`, and one of the `v1` signatures equal
/// (compared in constant time) to the HMAC of `id.timestamp.body`.
pub fn verify(
    secret: &[u8],
    id: Option<&str>,
    timestamp: Option<&str>,
    signatures: Option<&str>,
    body: &[u8],
    now: i64,
) -> std::result::Result<(), Refusal> {
    let (Some(id), Some(ts), Some(sigs)) = (id, timestamp, signatures) else {
        return Err(Refusal::MissingHeader);
    };
    if id.is_empty() || id.len() > 255 || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Refusal::MissingHeader);
    }
    if ts.is_empty() || ts.len() > 12 || !ts.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Refusal::BadTimestamp);
    }
    let t: i64 = ts.parse().map_err(|_| Refusal::BadTimestamp)?;
    if now - t > TOLERANCE_SECONDS {
        return Err(Refusal::TooOld);
    }
    if t - now > TOLERANCE_SECONDS {
        return Err(Refusal::TooNew);
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(body);
    let mut any = false;
    let mut ok = false;
    for entry in sigs.split(' ').filter(|s| !s.is_empty()).take(10) {
        let Some(sig) = entry.strip_prefix("v1,") else {
            continue;
        };
        any = true;
        if let Ok(bytes) = STANDARD.decode(sig) {
            // verify_slice compares in constant time.
            ok |= mac.clone().verify_slice(&bytes).is_ok();
        }
    }
    match (any, ok) {
        (_, true) => Ok(()),
        (false, false) => Err(Refusal::NoSignature),
        (true, false) => Err(Refusal::BadSignature),
    }
}

/// The user a Clerk event names, and the profile it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserData {
    pub subject: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

/// A Clerk event, as handle_webhook acts on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Created(UserData),
    Updated(UserData),
    Deleted(String),
    /// Any other type: acknowledged, nothing done.
    Other(String),
}

impl Event {
    pub fn type_name(&self) -> &str {
        match self {
            Event::Created(_) => "user.created",
            Event::Updated(_) => "user.updated",
            Event::Deleted(_) => "user.deleted",
            Event::Other(t) => t,
        }
    }
}

fn text(m: &Map<String, Value>, k: &str, max: usize) -> Option<String> {
    m.get(k)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= max)
        .map(str::to_owned)
}

/// A Clerk event body (`{"type", "data": {...}}`): for users, the id, the
/// primary email address (the one `primary_email_address_id` names, else
/// the first) when Clerk verified it (`verification.status` `verified`:
/// an address not verified, or not said to be, is never taken), first and
/// last name. 22023 for a body of the wrong shape.
pub fn parse_event(body: &Value) -> Result<Event> {
    let bad =
        |d: &'static str| IdentityError::invalid("webhook body is not a Clerk event").detail(d);
    let m = body.as_object().ok_or_else(|| bad("not a JSON object"))?;
    let ty = text(m, "type", 100).ok_or_else(|| bad("no type"))?;
    if !matches!(
        ty.as_str(),
        "user.created" | "user.updated" | "user.deleted"
    ) {
        return Ok(Event::Other(ty));
    }
    let data = m
        .get("data")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("no data object"))?;
    let subject = text(data, "id", crate::external::MAX_SUBJECT_BYTES)
        .ok_or_else(|| bad("data has no id"))?;
    if ty == "user.deleted" {
        return Ok(Event::Deleted(subject));
    }
    let primary = data.get("primary_email_address_id").and_then(Value::as_str);
    let emails = data
        .get("email_addresses")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let verified = |e: &Map<String, Value>| {
        e.get("verification")
            .and_then(|v| v.get("status"))
            .and_then(Value::as_str)
            == Some("verified")
    };
    let address = |e: &Value| {
        e.as_object()
            .filter(|e| verified(e))
            .and_then(|e| text(e, "email_address", 320))
    };
    let email = emails
        .iter()
        .find(|e| primary.is_some() && e.get("id").and_then(Value::as_str) == primary)
        .or_else(|| emails.first())
        .and_then(address);
    let d = UserData {
        subject,
        email,
        first_name: text(data, "first_name", 200),
        last_name: text(data, "last_name", 200),
    };
    Ok(if ty == "user.created" {
        Event::Created(d)
    } else {
        Event::Updated(d)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // Svix's documented example (docs.svix.com, "Verifying payloads manually").
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: &str = "1614265330";
    const BODY: &str = r#"{"test": 2432232314}"#;
    const SIG: &str = "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn svix_documented_example_verifies() {
        let key = parse_secret(SECRET).unwrap();
        assert_eq!(sign(&key, ID, TS, BODY.as_bytes()), SIG);
        let now = 1614265330;
        let header = format!("v1,bm90IGl0 v1a,xyz v1,{SIG}");
        assert_eq!(
            verify(
                &key,
                Some(ID),
                Some(TS),
                Some(&header),
                BODY.as_bytes(),
                now
            ),
            Ok(())
        );
    }

    #[test]
    fn every_forgery_is_refused() {
        let key = parse_secret(SECRET).unwrap();
        let now = 1614265330;
        let good = format!("v1,{SIG}");
        let v = |id, ts, sig: &str, body: &str, now| {
            verify(&key, Some(id), Some(ts), Some(sig), body.as_bytes(), now)
        };
        assert_eq!(
            v(ID, TS, &good, r#"{"test": 2432232315}"#, now),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            v("msg_other", TS, &good, BODY, now),
            Err(Refusal::BadSignature)
        );
        assert_eq!(v(ID, TS, &good, BODY, now + 301), Err(Refusal::TooOld));
        assert_eq!(v(ID, TS, &good, BODY, now - 301), Err(Refusal::TooNew));
        assert_eq!(
            v(ID, "16142x", &good, BODY, now),
            Err(Refusal::BadTimestamp)
        );
        assert_eq!(
            v(ID, TS, &format!("v2,{SIG}"), BODY, now),
            Err(Refusal::NoSignature)
        );
        assert_eq!(v(ID, TS, "v1,", BODY, now), Err(Refusal::BadSignature));
        let other = parse_secret("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
        assert_eq!(
            verify(
                &other,
                Some(ID),
                Some(TS),
                Some(&good),
                BODY.as_bytes(),
                now
            ),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            verify(&key, None, Some(TS), Some(&good), BODY.as_bytes(), now),
            Err(Refusal::MissingHeader)
        );
        assert!(parse_secret("whsec_short").is_err());
    }

    #[test]
    fn clerk_events_give_the_primary_email_and_names() {
        let created = json!({"type": "user.created", "object": "event", "data": {
        "id": "user_2abc", "first_name": "Ada", "last_name": null,
        "primary_email_address_id": "idn_2",
        "email_addresses": [
            {"id": "idn_1", "email_address": "old@example.com", "verification": {"status": "verified"}},
            {"id": "idn_2", "email_address": "ada@example.com", "verification": {"status": "verified"}}
        ]}});
        assert_eq!(
            parse_event(&created).unwrap(),
            Event::Created(UserData {
                subject: "user_2abc".into(),
                email: Some("ada@example.com".into()),
                first_name: Some("Ada".into()),
                last_name: None
            })
        );
        let deleted = json!({"type": "user.deleted", "data": {"id": "user_2abc", "deleted": true}});
        assert_eq!(
            parse_event(&deleted).unwrap(),
            Event::Deleted("user_2abc".into())
        );
        let other = json!({"type": "session.created", "data": {}});
        assert_eq!(
            parse_event(&other).unwrap(),
            Event::Other("session.created".into())
        );
        assert!(parse_event(&json!({"type": "user.created", "data": {}})).is_err());
        assert!(parse_event(&json!([1])).is_err());
    }

    #[test]
    fn an_email_clerk_has_not_verified_is_never_taken() {
        let event = |verification: Value| {
            json!({"type": "user.created", "data": {"id": "user_2abc",
            "primary_email_address_id": "idn_1",
            "email_addresses": [
                {"id": "idn_0", "email_address": "other@example.com", "verification": {"status": "verified"}},
                {"id": "idn_1", "email_address": "victim@example.com", "verification": verification}
            ]}})
        };
        let email = |v: Value| match parse_event(&event(v)).unwrap() {
            Event::Created(d) => d.email,
            e => panic!("{e:?}"),
        };
        assert_eq!(
            email(json!({"status": "verified", "strategy": "email_code"})).as_deref(),
            Some("victim@example.com")
        );
        // Unverified, failed, expired, or nothing said: no email at all (not
        // another address in its place).
        for v in [
            json!({"status": "unverified", "strategy": "email_code"}),
            json!({"status": "expired"}),
            json!(null),
            json!("verified"),
        ] {
            assert_eq!(email(v.clone()), None, "{v}");
        }
        let mut absent = event(json!(null));
        absent["data"]["email_addresses"][1]
            .as_object_mut()
            .unwrap()
            .remove("verification");
        assert!(matches!(parse_event(&absent).unwrap(), Event::Created(d) if d.email.is_none()));
    }
}
