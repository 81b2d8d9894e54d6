//! Who is calling (API.md conventions): the user in the request claims, or,
//! with no claims at all, the database role itself acting as `system`.
//! Malformed or subject-less claims are `Anon`: fail closed.

use super::claims::canonical_uuid;
use super::ids::{OrgId, UserId};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// No claims: the database role acting as system.
    System,
    /// A user from the claims: canonical uuid, and the scopes the claims
    /// carry (None: the claims restrict nothing, e.g. a sign-in JWT).
    User {
        sub: String,
        scopes: Option<Vec<String>>,
    },
    /// Claims without a usable subject (anon key, malformed, wrong shape).
    Anon,
}

/// The actor of `request.jwt.claims` text (None or "": no claims; PostgREST
/// resets the setting to "" after each transaction).
pub fn from_claims_text(text: Option<&str>) -> Actor {
    from_view(&view_from_text(text))
}

/// The actor of a claims view: the one parse the RLS helpers also use.
pub fn from_view(v: &ClaimsView) -> Actor {
    let (Some(claims), Some(uid)) = (&v.claims, v.uid) else {
        return if v.kind == ActorKind::System {
            Actor::System
        } else {
            Actor::Anon
        };
    };
    // An empty or absent list restricts nothing (API tokens default to `{}`:
    // the user's own rights); a list restricts to what its scopes cover.
    let scopes = match claims.get("scopes") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) if a.is_empty() => None,
        Some(Value::Array(a)) => Some(
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect(),
        ),
        // A scopes claim of the wrong shape restricts to nothing.
        Some(_) => Some(Vec::new()),
    };
    Actor::User {
        sub: uid.text(),
        scopes,
    }
}

/// Scopes for a token the actor mints for itself: the requested ones, which
/// must lie within the actor's (when its claims carry scopes); None requested
/// inherits the actor's. Err names the first scope beyond the actor's.
pub fn narrow_scopes(
    actor: Option<&[String]>,
    requested: Option<Vec<String>>,
) -> Result<Option<Vec<String>>, String> {
    match (actor, requested) {
        (None, r) => Ok(r),
        // Restricted to nothing (a scopes claim of the wrong shape): minting
        // anything would widen it, since an empty list restricts nothing.
        (Some([]), _) => Err("(the actor has no usable scopes)".into()),
        (Some(a), None) => Ok(Some(a.to_vec())),
        (Some(a), Some(r)) => match r.iter().find(|s| !covered(a, s)) {
            Some(extra) => Err(extra.clone()),
            None => Ok(Some(r)),
        },
    }
}

/// Whether scope `have` covers `want`: equal, `*`, or a `prefix:*` wildcard.
pub fn scope_covers(have: &str, want: &str) -> bool {
    have == want
        || have == "*"
        || (have.ends_with(":*") && want.starts_with(&have[..have.len() - 1]))
}

/// Whether any of `have` covers `want`.
pub fn covered(have: &[String], want: &str) -> bool {
    have.iter().any(|h| scope_covers(h, want))
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "8ccaa7af-909f-44e7-84cb-67cdccb56be6";

    #[test]
    fn no_claims_is_system_and_bad_claims_are_anon() {
        assert_eq!(from_claims_text(None), Actor::System);
        assert_eq!(from_claims_text(Some("")), Actor::System);
        for bad in [
            "{",
            "[1]",
            "{}",
            r#"{"role":"anon"}"#,
            r#"{"sub":"not-a-uuid"}"#,
            r#"{"sub":5}"#,
        ] {
            assert_eq!(from_claims_text(Some(bad)), Actor::Anon, "{bad}");
        }
    }

    #[test]
    fn users_carry_their_scopes() {
        let a = from_claims_text(Some(&format!(
            r#"{{"sub":"{}","role":"authenticated"}}"#,
            U.to_uppercase()
        )));
        assert_eq!(
            a,
            Actor::User {
                sub: U.into(),
                scopes: None
            }
        );
        let a = from_claims_text(Some(&format!(r#"{{"sub":"{U}","scopes":["a","b"]}}"#)));
        assert_eq!(
            a,
            Actor::User {
                sub: U.into(),
                scopes: Some(vec!["a".into(), "b".into()])
            }
        );
        let a = from_claims_text(Some(&format!(r#"{{"sub":"{U}","scopes":"all"}}"#)));
        assert_eq!(
            a,
            Actor::User {
                sub: U.into(),
                scopes: Some(vec![])
            }
        );
    }

    #[test]
    fn scopes_never_widen() {
        let mine = vec!["a".to_string(), "b".to_string()];
        assert_eq!(narrow_scopes(Some(&mine), None), Ok(Some(mine.clone())));
        assert_eq!(
            narrow_scopes(Some(&mine), Some(vec!["a".into()])),
            Ok(Some(vec!["a".into()]))
        );
        assert_eq!(
            narrow_scopes(Some(&mine), Some(vec!["a".into(), "c".into()])),
            Err("c".into())
        );
        assert!(narrow_scopes(Some(&[]), Some(vec!["a".into()])).is_err());
        assert_eq!(
            narrow_scopes(None, Some(vec!["x".into()])),
            Ok(Some(vec!["x".into()]))
        );
        assert_eq!(narrow_scopes(None, None), Ok(None));
        assert!(
            narrow_scopes(Some(&[]), None).is_err(),
            "nothing cannot mint"
        );
        let wild = vec!["credentials:*".to_string()];
        assert_eq!(
            narrow_scopes(Some(&wild), Some(vec!["credentials:read".into()])),
            Ok(Some(vec!["credentials:read".into()]))
        );
        assert!(narrow_scopes(Some(&wild), Some(vec!["users:read".into()])).is_err());
    }

    #[test]
    fn wildcards_cover_their_prefix_only() {
        assert!(scope_covers("*", "users:write"));
        assert!(scope_covers("users:*", "users:write"));
        assert!(!scope_covers("users:*", "usersx:write"));
        assert!(!scope_covers("users:read", "users:write"));
        assert!(!scope_covers("users", "users:read"));
        let empty = from_claims_text(Some(&format!(r#"{{"sub":"{U}","scopes":[]}}"#)));
        assert_eq!(
            empty,
            Actor::User {
                sub: U.into(),
                scopes: None
            },
            "[] restricts nothing"
        );
    }
}

/// Everything the RLS helpers answer, computed once from the claims text and
/// cached until the claims change. Missing or malformed claims give None
/// (policies fail closed), never an error.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClaimsView {
    pub claims: Option<serde_json::Map<String, Value>>,
    pub uid: Option<UserId>,
    pub org_id: Option<OrgId>,
    pub user_role: Option<String>,
    pub is_service_user: Option<bool>,
    /// The Postgres role claim (`authenticated`, `anon`, ...).
    pub role: Option<String>,
    pub kind: ActorKind,
    /// The claims are a websocket or agent token's (aud `websocket` or
    /// `agent`, or an `act` claim): they may read, never mint, change or
    /// reveal (`authz::require_scope`).
    pub derived: bool,
}

/// Who is acting (API.md: `actor().kind`, the audit trail's actor_kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ActorKind {
    User,
    Service,
    Agent,
    /// No claims: the database role itself.
    #[default]
    System,
    /// Claims without a usable user.
    Anon,
}

impl ActorKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::Service => "service",
            ActorKind::Agent => "agent",
            ActorKind::System => "system",
            ActorKind::Anon => "anon",
        }
    }
}

/// Whether the `aud` claim is `want` or an array holding it.
fn aud_has(c: &serde_json::Map<String, Value>, want: &str) -> bool {
    match c.get("aud") {
        Some(Value::String(a)) => a == want,
        Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(want)),
        _ => false,
    }
}

fn uuid_claim(c: &serde_json::Map<String, Value>, k: &str) -> Option<[u8; 16]> {
    c.get(k)
        .and_then(Value::as_str)
        .and_then(canonical_uuid)
        .and_then(|u| super::claims::uuid_bytes(&u))
}

/// What a failed identity.authenticate pins for the rest of its
/// transaction: claims text that is not an object, so the view is
/// `refused_view()`'s (anonymous, every helper NULL).
pub const NOBODY: &str = "null";

/// The view of claims that name a user but fail a check of the
/// extension's state (a revoked jti or session, a user suspended or whose
/// tokens_valid_after moved, a revoked parent API token), or of a pinned
/// "nobody" (a failed identity.authenticate): an anonymous actor, never the
/// system; every helper answers NULL.
pub fn refused_view() -> ClaimsView {
    ClaimsView {
        kind: ActorKind::Anon,
        ..Default::default()
    }
}

/// The view of claims text (None or blank: no claims, the `system` actor).
pub fn view_from_text(text: Option<&str>) -> ClaimsView {
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return ClaimsView {
            kind: ActorKind::System,
            ..Default::default()
        };
    };
    let Ok(Value::Object(c)) = serde_json::from_str::<Value>(text) else {
        return ClaimsView {
            kind: ActorKind::Anon,
            ..Default::default()
        };
    };
    let uid = uuid_claim(&c, "sub").map(UserId);
    let is_service_user = c.get("is_service_user").and_then(Value::as_bool);
    let is_agent = c.get("act").is_some_and(Value::is_object) || aud_has(&c, "agent");
    let derived = is_agent || aud_has(&c, "websocket");
    let kind = match (uid.is_some(), is_agent, is_service_user) {
        (false, _, _) => ActorKind::Anon,
        (true, true, _) => ActorKind::Agent,
        (true, false, Some(true)) => ActorKind::Service,
        (true, false, _) => ActorKind::User,
    };
    ClaimsView {
        uid,
        org_id: uuid_claim(&c, "organization_id").map(OrgId),
        user_role: c
            .get("user_role")
            .and_then(Value::as_str)
            .map(str::to_owned),
        is_service_user,
        role: c.get("role").and_then(Value::as_str).map(str::to_owned),
        kind,
        derived,
        claims: Some(c),
    }
}

/// identity.claim(name): a string claim as is, any other value as JSON text.
pub fn claim_text(view: &ClaimsView, name: &str) -> Option<String> {
    match view.claims.as_ref()?.get(name)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        v => Some(v.to_string()),
    }
}

#[cfg(test)]
mod view_tests {
    use super::*;

    const U: &str = "8ccaa7af-909f-44e7-84cb-67cdccb56be6";
    const O: &str = "00000000-0000-0000-0000-00000000000a";

    #[test]
    fn views_fail_closed() {
        assert_eq!(view_from_text(None).kind, ActorKind::System);
        assert_eq!(view_from_text(Some("")).kind, ActorKind::System);
        for bad in ["{", "[1]", "null", r#"{"sub": 5}"#, r#"{"role": "anon"}"#] {
            let v = view_from_text(Some(bad));
            assert_eq!(v.kind, ActorKind::Anon, "{bad}");
            assert!(v.uid.is_none());
        }
        let v = view_from_text(Some(r#"{"sub": "not-a-uuid", "user_role": "admin"}"#));
        assert_eq!((v.kind, v.uid), (ActorKind::Anon, None));
        assert_eq!(
            v.user_role.as_deref(),
            Some("admin"),
            "claims still readable, uid is not"
        );
    }

    #[test]
    fn kinds_and_fields() {
        let v = view_from_text(Some(&format!(
            r#"{{"sub":"{U}","organization_id":"{O}","user_role":"admin","is_service_user":false,"role":"authenticated"}}"#
        )));
        assert_eq!(v.kind, ActorKind::User);
        assert_eq!(v.uid, super::super::claims::uuid_bytes(U).map(UserId));
        assert_eq!(v.org_id, super::super::claims::uuid_bytes(O).map(OrgId));
        assert_eq!(v.user_role.as_deref(), Some("admin"));
        assert_eq!(v.role.as_deref(), Some("authenticated"));
        assert_eq!(claim_text(&v, "user_role").as_deref(), Some("admin"));
        assert_eq!(claim_text(&v, "is_service_user").as_deref(), Some("false"));
        assert_eq!(claim_text(&v, "missing"), None);
        let svc = view_from_text(Some(&format!(r#"{{"sub":"{U}","is_service_user":true}}"#)));
        assert_eq!(svc.kind, ActorKind::Service);
        let agent = view_from_text(Some(&format!(
            r#"{{"sub":"{U}","aud":"agent","act":{{"sub":"agent:1"}}}}"#
        )));
        assert_eq!((agent.kind, agent.derived), (ActorKind::Agent, true));
        let ws = view_from_text(Some(&format!(r#"{{"sub":"{U}","aud":["x","websocket"]}}"#)));
        assert_eq!((ws.kind, ws.derived), (ActorKind::User, true));
        assert!(!v.derived && !svc.derived, "a sign-in is not derived");
        // A string "true" is not a boolean: is_service_user stays unknown.
        let s = view_from_text(Some(&format!(
            r#"{{"sub":"{U}","is_service_user":"true"}}"#
        )));
        assert_eq!((s.is_service_user, s.kind), (None, ActorKind::User));
    }
}
