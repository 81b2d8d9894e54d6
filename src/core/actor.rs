//! Who is calling (API.md conventions): the user in the request claims, or,
//! with no claims at all, the database role itself acting as `system`.
//! Malformed or subject-less claims are `Anon`: fail closed.

use super::claims::canonical_uuid;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// No claims: the database role acting as system.
    System,
    /// A user from the claims: canonical uuid, and the scopes the claims
    /// carry (None: the claims restrict nothing, e.g. a sign-in JWT).
    User { sub: String, scopes: Option<Vec<String>> },
    /// Claims without a usable subject (anon key, malformed, wrong shape).
    Anon,
}

/// The actor of `request.jwt.claims` text (None or "": no claims; PostgREST
/// resets the setting to "" after each transaction).
pub fn from_claims_text(text: Option<&str>) -> Actor {
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else { return Actor::System };
    let Ok(Value::Object(c)) = serde_json::from_str::<Value>(text) else { return Actor::Anon };
    let Some(sub) = c.get("sub").and_then(Value::as_str).and_then(canonical_uuid) else { return Actor::Anon };
    let scopes = match c.get("scopes") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => Some(a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect()),
        // A scopes claim of the wrong shape restricts to nothing.
        Some(_) => Some(Vec::new()),
    };
    Actor::User { sub, scopes }
}

/// Scopes for a token the actor mints for itself: the requested ones, which
/// must lie within the actor's (when its claims carry scopes); None requested
/// inherits the actor's. Err names the first scope beyond the actor's.
pub fn narrow_scopes(actor: Option<&[String]>, requested: Option<Vec<String>>) -> Result<Option<Vec<String>>, String> {
    match (actor, requested) {
        (None, r) => Ok(r),
        (Some(a), None) => Ok(Some(a.to_vec())),
        (Some(a), Some(r)) => match r.iter().find(|s| !a.contains(s)) {
            Some(extra) => Err(extra.clone()),
            None => Ok(Some(r)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "8ccaa7af-909f-44e7-84cb-67cdccb56be6";

    #[test]
    fn no_claims_is_system_and_bad_claims_are_anon() {
        assert_eq!(from_claims_text(None), Actor::System);
        assert_eq!(from_claims_text(Some("")), Actor::System);
        for bad in ["{", "[1]", "{}", r#"{"role":"anon"}"#, r#"{"sub":"not-a-uuid"}"#, r#"{"sub":5}"#] {
            assert_eq!(from_claims_text(Some(bad)), Actor::Anon, "{bad}");
        }
    }

    #[test]
    fn users_carry_their_scopes() {
        let a = from_claims_text(Some(&format!(r#"{{"sub":"{}","role":"authenticated"}}"#, U.to_uppercase())));
        assert_eq!(a, Actor::User { sub: U.into(), scopes: None });
        let a = from_claims_text(Some(&format!(r#"{{"sub":"{U}","scopes":["a","b"]}}"#)));
        assert_eq!(a, Actor::User { sub: U.into(), scopes: Some(vec!["a".into(), "b".into()]) });
        let a = from_claims_text(Some(&format!(r#"{{"sub":"{U}","scopes":"all"}}"#)));
        assert_eq!(a, Actor::User { sub: U.into(), scopes: Some(vec![]) });
    }

    #[test]
    fn scopes_never_widen() {
        let mine = vec!["a".to_string(), "b".to_string()];
        assert_eq!(narrow_scopes(Some(&mine), None), Ok(Some(mine.clone())));
        assert_eq!(narrow_scopes(Some(&mine), Some(vec!["a".into()])), Ok(Some(vec!["a".into()])));
        assert_eq!(narrow_scopes(Some(&mine), Some(vec!["a".into(), "c".into()])), Err("c".into()));
        assert_eq!(narrow_scopes(Some(&[]), Some(vec!["a".into()])), Err("a".into()));
        assert_eq!(narrow_scopes(None, Some(vec!["x".into()])), Ok(Some(vec!["x".into()])));
        assert_eq!(narrow_scopes(None, None), Ok(None));
    }
}
