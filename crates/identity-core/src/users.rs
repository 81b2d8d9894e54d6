//! Users, feature flags and subscriptions (API.md sections 6 and 9): the
//! checks on update_user's changes, the stable rollout hash, and the
//! computed subscription status. Pure.

use super::authz::FieldClass;
use super::claims::canonical_uuid;
use super::error::{IdentityError, Result};
use super::token::is_slug;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Every field update_user accepts, its class, and its check.
pub fn field_class(name: &str) -> Option<FieldClass> {
    Some(match name {
        "first_name" | "last_name" | "metadata" => FieldClass::Profile,
        "email" | "user_role" | "status" | "status_reason" | "application_id"
        | "application_name" | "description" | "is_service_user" => FieldClass::Admin,
        "organization_id" | "external_id" => FieldClass::System,
        _ => return None,
    })
}

fn text(v: &Value, field: &str, max: usize, nullable: bool) -> Result<()> {
    match v {
        Value::Null if nullable => Ok(()),
        Value::String(s) if !s.is_empty() && s.chars().count() <= max && !s.contains('\0') => {
            Ok(())
        }
        _ => Err(
            IdentityError::invalid("invalid value in changes").detail(format!(
                "{field} must be a string of 1 to {max} characters{}",
                if nullable { " or null" } else { "" }
            )),
        ),
    }
}

/// Checks `changes` (a JSON object of field -> new value): known fields,
/// right types and sizes. Returns the highest field class it touches.
/// Values are never echoed back (they may be anything a client sent).
pub fn check_changes(changes: &Value) -> Result<FieldClass> {
    let Value::Object(m) = changes else {
        return Err(IdentityError::invalid("changes must be a JSON object"));
    };
    if m.is_empty() {
        return Err(
            IdentityError::invalid("changes is empty").hint("pass at least one field to change")
        );
    }
    let mut highest = FieldClass::Profile;
    for (k, v) in m {
        let class = field_class(k).ok_or_else(|| {
            let shown: String = k.chars().take(64).collect();
            IdentityError::invalid("unknown field in changes").detail(format!("field {shown:?}")).hint(
                "fields: first_name, last_name, metadata, email, user_role, status, status_reason, application_id, \
                 application_name, description, is_service_user, organization_id, external_id",
            )
        })?;
        highest = highest.max(class);
        match k.as_str() {
            "first_name" | "last_name" | "application_name" => text(v, k, 200, true)?,
            "description" | "status_reason" => {
                text(v, k, if k == "description" { 2000 } else { 1000 }, true)?
            }
            "external_id" => text(v, k, 255, true)?,
            "email" => check_email(v.as_str().unwrap_or(""))?,
            "metadata" => {
                if !v.is_object() {
                    return Err(IdentityError::invalid("invalid value in changes")
                        .detail("metadata must be a JSON object"));
                }
                let n = v.to_string().len();
                if n > super::input::MAX_METADATA_BYTES {
                    return Err(IdentityError::invalid("invalid value in changes").detail(
                        format!(
                            "metadata is {n} bytes, the limit is {}",
                            super::input::MAX_METADATA_BYTES
                        ),
                    ));
                }
            }
            "user_role" => {
                if !matches!(v.as_str(), Some("admin" | "user" | "system")) {
                    return Err(IdentityError::invalid("invalid value in changes")
                        .detail("user_role must be admin, user or system"));
                }
            }
            "status" => {
                if !matches!(v.as_str(), Some("active" | "suspended" | "disabled")) {
                    return Err(IdentityError::invalid("invalid value in changes")
                        .detail("status must be active, suspended or disabled"));
                }
            }
            "is_service_user" => {
                if !v.is_boolean() {
                    return Err(IdentityError::invalid("invalid value in changes")
                        .detail("is_service_user must be a boolean"));
                }
            }
            "application_id" | "organization_id" => {
                if !(v.is_null() || v.as_str().and_then(canonical_uuid).is_some()) {
                    return Err(IdentityError::invalid("invalid value in changes")
                        .detail(format!("{k} must be a uuid or null")));
                }
            }
            _ => unreachable!("every classified field is checked"),
        }
    }
    Ok(highest)
}

/// The email rule of the users table, checked first for a clear message.
pub fn check_email(email: &str) -> Result<()> {
    let ok = (3..=320).contains(&email.len())
        && email.matches('@').count() == 1
        && !email.starts_with('@')
        && !email.ends_with('@')
        && !email.chars().any(|c| c.is_whitespace() || c == '\0');
    if ok {
        Ok(())
    } else {
        Err(IdentityError::invalid("invalid email")
            .hint("an email is 3 to 320 characters with exactly one @ and no spaces"))
    }
}

/// A name-like argument: NULL allowed, else 1 to `max` characters.
pub fn check_name(v: Option<&str>, what: &'static str, max: usize) -> Result<()> {
    match v {
        None => Ok(()),
        Some(s) if !s.trim().is_empty() && s.chars().count() <= max && !s.contains('\0') => Ok(()),
        Some(_) => Err(IdentityError::invalid(what).detail(format!("1 to {max} characters"))),
    }
}

/// The rollout bucket 0..=99 of (flag, user): the first 4 bytes of
/// SHA-256("key:user"), so a user's answer never flaps between calls,
/// backends or servers, and raising the percentage only adds users.
pub fn rollout_bucket(key: &str, user: &[u8; 16]) -> u32 {
    let mut h = Sha256::new();
    h.update(key.as_bytes());
    h.update(b":");
    h.update(user);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]]) % 100
}

/// A flag's answer for a user: the override if any, else enabled and in
/// the rollout. Without a user, only a 100% rollout counts.
pub fn flag_enabled(
    enabled: bool,
    rollout_percent: i32,
    key: &str,
    user: Option<&[u8; 16]>,
    overridden: Option<bool>,
) -> bool {
    if let Some(o) = overridden {
        return o;
    }
    if !enabled || rollout_percent <= 0 {
        return false;
    }
    if rollout_percent >= 100 {
        return true;
    }
    user.is_some_and(|u| rollout_bucket(key, u) < rollout_percent as u32)
}

/// The status subscription_status reports: `canceled` as stored, a trial
/// past its end or an active period past its end are `expired`.
pub fn subscription_status(
    stored: &str,
    trial_ends_at: Option<i64>,
    current_period_end: Option<i64>,
    now: i64,
) -> &'static str {
    match stored {
        "canceled" => "canceled",
        "trialing" if trial_ends_at.is_some_and(|t| t <= now) => "expired",
        "trialing" => "trialing",
        "active" if current_period_end.is_some_and(|t| t <= now) => "expired",
        "active" => "active",
        _ => "expired",
    }
}

/// A provider name as the credentials table requires it.
pub fn check_provider(p: &str) -> Result<()> {
    if is_slug(p, 64, b"_.-") {
        Ok(())
    } else {
        Err(IdentityError::invalid("invalid provider")
            .hint("a provider is 1 to 64 of a-z 0-9 _ . -, e.g. openrouter"))
    }
}

/// A feature flag key as the feature_flags table requires it.
pub fn check_flag_key(key: &str) -> Result<()> {
    if is_slug(key, 100, b"_.:-") {
        Ok(())
    } else {
        Err(IdentityError::invalid("invalid feature flag key")
            .hint("a key is 1 to 100 of a-z 0-9 _ . : -, e.g. new.editor"))
    }
}

/// A credential secret: 8 to 4096 bytes, no NUL, no surrounding whitespace
/// (a pasted newline is a classic cause of "invalid key" at the provider).
/// Errors describe the secret's shape only, never its content.
pub fn check_secret(s: &str) -> Result<()> {
    if s.len() < 8 || s.len() > 4096 {
        return Err(IdentityError::invalid("secret must be 8 to 4096 bytes")
            .detail(format!("{} bytes given", s.len())));
    }
    if s.contains('\0') || s.trim() != s {
        return Err(IdentityError::invalid(
            "secret has surrounding whitespace or a NUL byte",
        ));
    }
    Ok(())
}

/// The last 4 characters shown in place of the secret.
pub fn last4(s: &str) -> String {
    let n = s.chars().count();
    s.chars().skip(n.saturating_sub(4)).collect()
}

/// Associated data binding a credential's ciphertext to its row: id and
/// organization. Copying the ciphertext to another row, or moving the row to
/// another organization, makes it undecryptable.
pub fn credential_aad(id: &str, org: Option<&str>) -> Vec<u8> {
    format!("identity.credentials:{id}:{}", org.unwrap_or("-")).into_bytes()
}

/// update_credential's `changes`: name and credit_limit only (the secret is
/// changed with the `secret` field, re-encrypted).
pub fn check_credential_changes(changes: &Value) -> Result<&Map<String, Value>> {
    let Value::Object(m) = changes else {
        return Err(IdentityError::invalid("changes must be a JSON object"));
    };
    if m.is_empty() {
        return Err(IdentityError::invalid("changes is empty"));
    }
    for (k, v) in m {
        match k.as_str() {
            "name" => text(v, k, 200, false)?,
            "secret" => check_secret(
                v.as_str()
                    .ok_or_else(|| IdentityError::invalid("secret must be a string"))?,
            )?,
            "credit_limit" => {
                if !(v.is_null() || v.as_f64().is_some_and(|f| f >= 0.0 && f.is_finite())) {
                    return Err(IdentityError::invalid("invalid value in changes")
                        .detail("credit_limit must be a number >= 0 or null"));
                }
            }
            _ => {
                let shown: String = k.chars().take(64).collect();
                return Err(IdentityError::invalid("unknown field in changes")
                    .detail(format!("field {shown:?}"))
                    .hint("fields: name, secret, credit_limit (use set_default_credential / set_credential_enabled for the flags)"));
            }
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes_are_checked_by_field() {
        assert_eq!(
            check_changes(&json!({"first_name": "Ada"})).unwrap(),
            FieldClass::Profile
        );
        assert_eq!(
            check_changes(&json!({"first_name": "Ada", "status": "suspended"})).unwrap(),
            FieldClass::Admin
        );
        assert_eq!(
            check_changes(&json!({"organization_id": null})).unwrap(),
            FieldClass::System
        );
        for bad in [
            json!({}),
            json!([1]),
            json!("x"),
            json!({"password": "x"}),
            json!({"first_name": 5}),
            json!({"first_name": "x".repeat(201)}),
            json!({"status": "gone"}),
            json!({"user_role": "root"}),
            json!({"metadata": [1]}),
            json!({"is_service_user": "true"}),
            json!({"application_id": "not-a-uuid"}),
            json!({"email": "no-at-sign"}),
        ] {
            assert_eq!(
                check_changes(&bad).unwrap_err().sqlstate(),
                "22023",
                "{bad}"
            );
        }
        let e = check_changes(&json!({"token_hash": "secret-value"})).unwrap_err();
        assert!(e.to_string().contains("token_hash") && !e.to_string().contains("secret-value"));
    }

    #[test]
    fn rollout_is_stable_and_monotonic() {
        let users: Vec<[u8; 16]> = (0..2000u32)
            .map(|i| {
                let mut u = [0u8; 16];
                u[..4].copy_from_slice(&i.to_be_bytes());
                u
            })
            .collect();
        let at = |p| {
            users
                .iter()
                .filter(|u| flag_enabled(true, p, "new.ui", Some(u), None))
                .count()
        };
        let (p10, p50) = (at(10), at(50));
        assert!((120..=280).contains(&p10), "10% of 2000 ~ 200, got {p10}");
        assert!((850..=1150).contains(&p50), "50% of 2000 ~ 1000, got {p50}");
        for u in &users {
            assert_eq!(rollout_bucket("new.ui", u), rollout_bucket("new.ui", u));
            if flag_enabled(true, 10, "new.ui", Some(u), None) {
                assert!(
                    flag_enabled(true, 50, "new.ui", Some(u), None),
                    "raising the percentage only adds users"
                );
            }
        }
        assert_eq!(at(0), 0);
        assert_eq!(at(100), 2000);
        assert!(!flag_enabled(false, 100, "k", Some(&users[0]), None));
        assert!(
            flag_enabled(false, 0, "k", Some(&users[0]), Some(true)),
            "override wins"
        );
        assert!(!flag_enabled(true, 100, "k", Some(&users[0]), Some(false)));
        assert!(!flag_enabled(true, 50, "k", None, None));
    }

    #[test]
    fn subscription_states() {
        assert_eq!(
            subscription_status("trialing", Some(200), None, 100),
            "trialing"
        );
        assert_eq!(
            subscription_status("trialing", Some(100), None, 100),
            "expired"
        );
        assert_eq!(
            subscription_status("active", None, Some(50), 100),
            "expired"
        );
        assert_eq!(subscription_status("active", None, None, 100), "active");
        assert_eq!(
            subscription_status("canceled", Some(200), None, 100),
            "canceled"
        );
    }

    #[test]
    fn credential_inputs() {
        assert!(check_provider("openrouter").is_ok());
        assert!(check_flag_key("new.editor:v2").is_ok());
        assert!(check_flag_key("Bad Key").is_err());
        for bad in ["", "OpenRouter", "-x", "a b", &"a".repeat(65)] {
            assert!(check_provider(bad).is_err(), "{bad}");
        }
        assert!(check_secret("sk-or-v1-0123456789").is_ok());
        for bad in [
            "short",
            "sk-or-v1-0123456789\n",
            "sk-or\0-v1-0123456789",
            &"x".repeat(4097),
        ] {
            let e = check_secret(bad).unwrap_err();
            assert_eq!(e.sqlstate(), "22023");
            assert!(!e.to_string().contains("0123456789"));
        }
        assert_eq!(last4("sk-or-v1-abcd1234"), "1234");
        assert_eq!(last4("ключ-ünï"), "-ünï", "characters, not bytes");
        assert_ne!(
            credential_aad("c1", Some("o1")),
            credential_aad("c1", Some("o2"))
        );
        assert_ne!(credential_aad("c1", None), credential_aad("c2", None));
        assert!(check_credential_changes(&json!({"name": "x", "credit_limit": 5})).is_ok());
        assert!(check_credential_changes(&json!({"is_default": true})).is_err());
        assert!(check_credential_changes(&json!({"credit_limit": -1})).is_err());
    }
}
