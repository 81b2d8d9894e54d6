//! Supabase Auth's users (`auth.users`, API.md 13): what identity takes
//! from an auth user's `raw_app_meta_data` when it creates the identity
//! user, and how a ban moves the user's status. Pure: the SQL lives in
//! src/api/supabase.rs.
//!
//! Only `raw_app_meta_data` is read: Supabase lets only the service role
//! write it (the admin API's `app_metadata`). `raw_user_meta_data` is what
//! a signed-in user writes about themselves (`supabase.auth.updateUser({
//! data })`), so a flag, a role or an organization read from it would let
//! anyone make themselves a service user or an admin of any organization.

use crate::claims::{parse_uuid, UserRole};
use serde_json::Value;

/// The flags an identity user created from an auth user starts with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthFlags {
    pub is_service_user: bool,
    pub organization_id: Option<[u8; 16]>,
    /// `admin` or `user` (None: the column's default, `user`).
    pub user_role: Option<UserRole>,
    pub application_id: Option<[u8; 16]>,
    pub application_name: Option<String>,
}

/// Longest application_name (the users table's check).
const MAX_APPLICATION_NAME: usize = 200;

/// The flags of `raw_app_meta_data` (NULL and `{}` give the defaults). A
/// value of the wrong shape is an error naming the key, never ignored: an
/// auth user whose intended flags cannot be honoured is left unlinked
/// (with a WARNING) rather than made with other flags. `user_role`
/// `system` is refused: that role is identity's own to give.
pub fn flags_from_app_metadata(v: Option<&Value>) -> Result<AuthFlags, &'static str> {
    let mut f = AuthFlags::default();
    let Some(obj) = v.and_then(Value::as_object) else {
        return match v {
            None | Some(Value::Null) => Ok(f),
            Some(_) => Err("raw_app_meta_data is not an object"),
        };
    };
    match obj.get("is_service_user") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(b)) => f.is_service_user = *b,
        Some(_) => return Err("app_metadata.is_service_user is not a boolean"),
    }
    let uuid = |key: &str, e: &'static str| match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => parse_uuid(s).map(Some).ok_or(e),
        Some(_) => Err(e),
    };
    f.organization_id = uuid(
        "organization_id",
        "app_metadata.organization_id is not a uuid",
    )?;
    f.application_id = uuid(
        "application_id",
        "app_metadata.application_id is not a uuid",
    )?;
    f.user_role = match obj.get("user_role") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s == "admin" => Some(UserRole::Admin),
        Some(Value::String(s)) if s == "user" => Some(UserRole::User),
        Some(_) => return Err("app_metadata.user_role is not admin or user"),
    };
    f.application_name = match obj.get("application_name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= MAX_APPLICATION_NAME => {
            Some(s.clone())
        }
        Some(_) => {
            return Err("app_metadata.application_name is not a name of 1 to 200 characters")
        }
    };
    if f.is_service_user && f.organization_id.is_none() {
        return Err("a service user needs app_metadata.organization_id");
    }
    Ok(f)
}

/// What a ban does to a linked user, from the auth row's ban and the
/// identity user's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BanStep {
    /// Nothing changes.
    Keep,
    /// Suspend the active user, and remember that the ban did.
    Suspend,
    /// The ban that suspended the user is lifted: reactivate.
    Reactivate,
    /// The ban is lifted but the user is no longer suspended (an admin
    /// reactivated, or changed them): only forget the ban.
    Forget,
}

/// `banned`: auth.users.banned_until is in the future. `active`: the
/// identity user's status is `active`. `by_ban`: identity suspended the
/// user for this ban (an admin's own suspension is never lifted by an
/// auth user's unban; an admin's suspend or reactivate forgets the ban).
pub fn ban_step(banned: bool, active: bool, by_ban: bool) -> BanStep {
    match (banned, by_ban) {
        (true, false) if active => BanStep::Suspend,
        (true, _) => BanStep::Keep,
        (false, true) if !active => BanStep::Reactivate,
        (false, true) => BanStep::Forget,
        (false, false) => BanStep::Keep,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ORG: &str = "7d6f5f2e-8d1c-4a53-9a55-0c1b2f1e3a4b";

    #[test]
    fn defaults_from_nothing() {
        assert_eq!(flags_from_app_metadata(None), Ok(AuthFlags::default()));
        assert_eq!(
            flags_from_app_metadata(Some(&Value::Null)),
            Ok(AuthFlags::default())
        );
        // Supabase's own keys are not flags.
        let v = json!({"provider": "email", "providers": ["email"]});
        assert_eq!(flags_from_app_metadata(Some(&v)), Ok(AuthFlags::default()));
    }

    #[test]
    fn a_service_user_with_its_organization() {
        let v = json!({"is_service_user": true, "organization_id": ORG, "user_role": "admin",
                       "application_id": ORG, "application_name": "billing"});
        let f = flags_from_app_metadata(Some(&v)).unwrap();
        assert!(f.is_service_user);
        assert_eq!(f.organization_id, parse_uuid(ORG));
        assert_eq!(f.user_role, Some(UserRole::Admin));
        assert_eq!(f.application_name.as_deref(), Some("billing"));
    }

    #[test]
    fn wrong_shapes_are_errors_not_defaults() {
        for v in [
            json!([]),
            json!({"is_service_user": "true"}),
            json!({"is_service_user": true}),
            json!({"organization_id": "acme"}),
            json!({"organization_id": 7}),
            json!({"user_role": "system"}),
            json!({"user_role": "owner"}),
            json!({"application_name": ""}),
            json!({"application_name": "x".repeat(201)}),
        ] {
            assert!(flags_from_app_metadata(Some(&v)).is_err(), "{v}");
        }
    }

    #[test]
    fn bans() {
        assert_eq!(ban_step(true, true, false), BanStep::Suspend);
        // An admin's suspension: the ban neither claims nor lifts it.
        assert_eq!(ban_step(true, false, false), BanStep::Keep);
        assert_eq!(ban_step(false, false, false), BanStep::Keep);
        assert_eq!(ban_step(true, false, true), BanStep::Keep);
        assert_eq!(ban_step(false, false, true), BanStep::Reactivate);
        assert_eq!(ban_step(false, true, true), BanStep::Forget);
        assert_eq!(ban_step(false, true, false), BanStep::Keep);
    }
}
