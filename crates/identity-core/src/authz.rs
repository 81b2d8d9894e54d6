//! Who may do what to whom (API.md sections 6, 7 and 9). Pure decisions over
//! the resolved actor and the target's owner and organization; the glue in
//! `api/` resolves both from the tables and calls these.
//!
//! The rule that keeps organizations apart: a target the actor may not see
//! is reported exactly like a target that does not exist (P0002), so no
//! answer tells another organization's ids from random ones. A target the
//! actor may see but not change is 42501.

use super::actor::{covered, ActorKind};
use super::error::{IdentityError, Kind, Result};

pub use super::ids::{OrgId, UserId};

/// A signed-in caller, as the tables (not the claims) describe them: role
/// and organization are read from identity.users at each call, so a
/// demotion or a move between organizations counts at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub id: UserId,
    pub org: Option<OrgId>,
    /// user_role `admin` with an organization: an org admin.
    pub admin: bool,
    pub is_service_user: bool,
    /// User, Service or Agent, for the audit trail.
    pub kind: ActorKind,
    /// None: unrestricted (a sign-in JWT, an API token without scopes).
    pub scopes: Option<Vec<String>>,
    /// Acting through a websocket or agent token (aud `websocket` /
    /// `agent`): such a caller may read, and never mint, change or reveal
    /// anything, whatever its scopes (`require_scope`).
    pub derived: bool,
}

/// The actor of a management call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// No claims and the admin grant level: back-office code.
    System,
    User(Caller),
}

impl Subject {
    pub fn id(&self) -> Option<UserId> {
        match self {
            Subject::System => None,
            Subject::User(c) => Some(c.id),
        }
    }
    pub fn org(&self) -> Option<OrgId> {
        match self {
            Subject::System => None,
            Subject::User(c) => c.org,
        }
    }
    pub fn kind(&self) -> ActorKind {
        match self {
            Subject::System => ActorKind::System,
            Subject::User(c) => c.kind,
        }
    }
    pub fn is_system(&self) -> bool {
        matches!(self, Subject::System)
    }
}

/// How the actor stands to a user (the target of a users function, or the
/// owner of a credential).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    System,
    /// An admin of the target's organization (themself included).
    OrgAdmin,
    /// The target themself, not an org admin.
    Myself,
    /// Anyone else: the target is not visible.
    Stranger,
}

pub fn relation(s: &Subject, target: UserId, target_org: Option<OrgId>) -> Relation {
    match s {
        Subject::System => Relation::System,
        Subject::User(c) if c.admin && c.org.is_some() && c.org == target_org => Relation::OrgAdmin,
        Subject::User(c) if c.id == target => Relation::Myself,
        Subject::User(_) => Relation::Stranger,
    }
}

pub fn not_found(what: &'static str) -> IdentityError {
    IdentityError::new(Kind::NotFound, what)
}

pub fn forbidden(message: &'static str) -> IdentityError {
    IdentityError::new(Kind::Forbidden, message)
}

/// A scoped actor (an API token or agent token with scopes) must hold a
/// scope covering `scope`; unscoped actors and system pass. A caller acting
/// through a websocket or agent token passes only `*:read` scopes: every
/// function that mints, changes or reveals requires a write, reveal or use
/// scope, so none of them accepts such a token as its actor (42501).
pub fn require_scope(s: &Subject, scope: &'static str) -> Result<()> {
    if matches!(s, Subject::User(Caller { derived: true, .. })) && !scope.ends_with(":read") {
        return Err(forbidden("a websocket or agent token cannot do this")
            .reason(crate::reason::Reason::DerivedToken)
            .detail(format!("needs scope {scope:?} and a sign-in token"))
            .hint("sign in with an access token or an API token"));
    }
    match s {
        Subject::User(Caller {
            scopes: Some(have), ..
        }) if !covered(have, scope) => Err(forbidden("the token's scopes do not allow this")
            .reason(crate::reason::Reason::InsufficientScope)
            .detail(format!("needs scope {scope:?}"))),
        _ => Ok(()),
    }
}

/// Only system (the admin grant level without claims).
pub fn require_system(s: &Subject, what: &'static str) -> Result<()> {
    if s.is_system() {
        Ok(())
    } else {
        Err(forbidden(what)
            .hint("call it from a role granted the admin level, without request claims"))
    }
}

/// Reading a user: themself, an admin of their organization, or system.
pub fn may_read_user(r: Relation) -> Result<()> {
    match r {
        Relation::Stranger => Err(not_found("user does not exist")),
        _ => Ok(()),
    }
}

/// Status changes, deletion: an admin of the user's organization or system.
/// The user themself sees the row but may not do it.
pub fn may_administer_user(r: Relation) -> Result<()> {
    match r {
        Relation::System | Relation::OrgAdmin => Ok(()),
        Relation::Myself => Err(forbidden(
            "only an organization admin or system may do this",
        )),
        Relation::Stranger => Err(not_found("user does not exist")),
    }
}

/// Creating a service user in `org`: an admin of that organization or
/// system. Another organization is not visible (P0002).
pub fn may_create_service_user(s: &Subject, org: OrgId) -> Result<()> {
    match s {
        Subject::System => Ok(()),
        Subject::User(c) if c.org == Some(org) && c.admin => Ok(()),
        Subject::User(c) if c.org == Some(org) => Err(forbidden(
            "only an organization admin or system may create service users",
        )),
        Subject::User(_) => Err(not_found("organization does not exist")),
    }
}

/// Which fields of update_user's `changes` a relation may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FieldClass {
    /// The user's own profile: first_name, last_name, metadata.
    Profile,
    /// Status, role, application fields, email, description,
    /// is_service_user: an org admin or system.
    Admin,
    /// Organization and external id: system only.
    System,
}

pub fn may_set(r: Relation, class: FieldClass) -> bool {
    match r {
        Relation::System => true,
        Relation::OrgAdmin => class <= FieldClass::Admin,
        Relation::Myself => class == FieldClass::Profile,
        Relation::Stranger => false,
    }
}

/// Making a human into a service user (update_user `is_service_user` true on
/// a user who is not one): system only. An org admin may mint tokens for the
/// organization's service users (`may_mint_for`), so letting it relabel a
/// member would let it mint a token that acts as that member.
pub fn may_make_service_user(r: Relation) -> Result<()> {
    match r {
        Relation::System => Ok(()),
        _ => Err(forbidden("only system may make a user a service user")
            .hint("create a service user with create_service_user")),
    }
}

/// Credentials (API.md section 7): how the actor stands to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CredentialFacts {
    pub owner: UserId,
    pub org: Option<OrgId>,
    pub is_system: bool,
    pub enabled: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialOp {
    /// get, usage: the owner, an admin of its organization, system.
    Read,
    /// update, enable/disable, set default: the owner (not on system
    /// credentials) or system.
    Change,
    /// delete: the owner (not on system credentials) or system.
    Delete,
    /// reveal: the owner or system, enabled credentials only.
    Reveal,
    /// record usage: the owner or system, enabled credentials only.
    Use,
}

pub fn may_credential(s: &Subject, c: &CredentialFacts, op: CredentialOp) -> Result<()> {
    let r = relation(s, c.owner, c.org);
    let owner = matches!(s, Subject::User(u) if u.id == c.owner);
    if r == Relation::Stranger {
        return Err(not_found("credential does not exist"));
    }
    if r == Relation::System {
        return match op {
            CredentialOp::Reveal | CredentialOp::Use if !c.enabled => {
                Err(forbidden("credential is disabled"))
            }
            _ => Ok(()),
        };
    }
    match op {
        CredentialOp::Read => Ok(()),
        _ if !owner => Err(forbidden("only the credential's owner may do this")),
        CredentialOp::Change | CredentialOp::Delete if c.is_system => Err(forbidden(
            "system credentials cannot be changed or deleted by users",
        )),
        CredentialOp::Reveal | CredentialOp::Use if !c.enabled => {
            Err(forbidden("credential is disabled"))
        }
        _ => Ok(()),
    }
}

/// API tokens (API.md section 4): a user's tokens are listed and revoked by
/// the user themself, an admin of their organization, or system; to anyone
/// else the user, and so each of their tokens, does not exist (P0002, with
/// `what`'s message). Minting and rotating are narrower: `may_mint_for`.
pub fn may_manage_tokens(r: Relation, what: &'static str) -> Result<()> {
    match r {
        Relation::Stranger => Err(not_found(what)),
        _ => Ok(()),
    }
}

/// Minting or rotating a credential that acts as user `target` (an API
/// token): the caller themself, a service user of an organization the caller
/// administers, or system. An org admin may not mint for a human member,
/// other admins included: that token would act as that person (read their
/// credential secrets, say). Revoking and suspending stay with org admins
/// (they only take power away). `r` is `relation(s, target, target's org)`.
pub fn may_mint_for(
    s: &Subject,
    r: Relation,
    target: UserId,
    target_is_service_user: bool,
    what: &'static str,
) -> Result<()> {
    match r {
        Relation::Stranger => Err(not_found(what)),
        Relation::System | Relation::Myself => Ok(()),
        Relation::OrgAdmin if s.id() == Some(target) || target_is_service_user => Ok(()),
        Relation::OrgAdmin => Err(forbidden("an organization admin may mint tokens only for itself and the organization's service users")
            .hint("the member creates their own tokens")),
    }
}

/// The rules for the token a caller is about to receive (create, rotate):
/// without expiry only for system (API.md: "`expires_in => null` only for
/// the admin level"); and a scoped caller (an API token with scopes, or a
/// JWT exchanged for one) gets no scope it does not hold, and never an
/// unscoped (unrestricted) token, so no token can widen itself.
pub fn may_receive_token(s: &Subject, expires: bool, scopes: &[String]) -> Result<()> {
    if !expires && !s.is_system() {
        return Err(forbidden("a token without expiry needs the admin level")
            .hint("give expires_in (at most 10 years)"));
    }
    if let Subject::User(Caller {
        scopes: Some(have), ..
    }) = s
    {
        if scopes.is_empty() {
            return Err(forbidden("a scoped caller may only create scoped tokens")
                .detail("the new token would have no scopes, which allows everything"));
        }
        if let Some(extra) = scopes.iter().find(|w| !covered(have, w)) {
            return Err(forbidden("a token's scopes may not exceed the caller's")
                .detail(format!("scope {extra:?} is not held")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: OrgId = OrgId([0xa; 16]);
    const B: OrgId = OrgId([0xb; 16]);
    const U1: UserId = UserId([1; 16]);
    const U2: UserId = UserId([2; 16]);
    const U3: UserId = UserId([3; 16]);

    fn user(id: UserId, org: OrgId, admin: bool) -> Subject {
        Subject::User(Caller {
            id,
            org: Some(org),
            admin,
            is_service_user: false,
            kind: ActorKind::User,
            scopes: None,
            derived: false,
        })
    }

    #[test]
    fn org_admins_mint_only_for_themselves_and_service_users() {
        let admin = user(U2, A, true);
        let r = |s: &Subject, t| relation(s, t, Some(A));
        assert!(
            may_mint_for(&admin, r(&admin, U2), U2, false, "x").is_ok(),
            "itself"
        );
        assert!(
            may_mint_for(&admin, r(&admin, U1), U1, true, "x").is_ok(),
            "a service user"
        );
        let e = may_mint_for(&admin, r(&admin, U1), U1, false, "x").unwrap_err();
        assert_eq!(e.sqlstate(), "42501", "a human member (another admin too)");
        let me = user(U1, A, false);
        assert!(may_mint_for(&me, r(&me, U1), U1, false, "x").is_ok());
        assert_eq!(
            may_mint_for(&me, r(&me, U3), U3, true, "user does not exist")
                .unwrap_err()
                .sqlstate(),
            "P0002"
        );
        assert!(may_mint_for(&Subject::System, Relation::System, U1, false, "x").is_ok());
        let other = user(U3, B, true);
        assert_eq!(
            may_mint_for(&other, r(&other, U1), U1, true, "x")
                .unwrap_err()
                .sqlstate(),
            "P0002"
        );
    }

    #[test]
    fn only_system_makes_a_member_a_service_user() {
        assert!(may_make_service_user(Relation::System).is_ok());
        for r in [Relation::OrgAdmin, Relation::Myself, Relation::Stranger] {
            assert_eq!(
                may_make_service_user(r).unwrap_err().sqlstate(),
                "42501",
                "{r:?}"
            );
        }
    }

    #[test]
    fn websocket_and_agent_tokens_only_read() {
        let c = Caller {
            id: U1,
            org: Some(A),
            admin: true,
            is_service_user: false,
            kind: ActorKind::User,
            scopes: None,
            derived: true,
        };
        let s = Subject::User(c);
        for scope in [
            "users:read",
            "credentials:read",
            "tokens:read",
            "audit:read",
        ] {
            assert!(require_scope(&s, scope).is_ok(), "{scope}");
        }
        for scope in [
            "users:write",
            "credentials:write",
            "credentials:reveal",
            "credentials:use",
            "tokens:write",
        ] {
            assert_eq!(
                require_scope(&s, scope).unwrap_err().sqlstate(),
                "42501",
                "{scope}"
            );
        }
    }

    #[test]
    fn api_tokens_are_managed_by_their_user_their_org_admin_and_system() {
        assert!(may_manage_tokens(Relation::System, "x").is_ok());
        assert!(may_manage_tokens(Relation::OrgAdmin, "x").is_ok());
        assert!(may_manage_tokens(Relation::Myself, "x").is_ok());
        let e = may_manage_tokens(Relation::Stranger, "API token does not exist").unwrap_err();
        assert_eq!(
            (e.sqlstate(), e.message),
            ("P0002", "API token does not exist")
        );
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        // Without expiry: system only.
        assert!(may_receive_token(&Subject::System, false, &[]).is_ok());
        assert_eq!(
            may_receive_token(&user(U1, A, true), false, &[])
                .unwrap_err()
                .sqlstate(),
            "42501"
        );
        assert!(
            may_receive_token(&user(U1, A, false), true, &[]).is_ok(),
            "an unscoped caller gets any scopes"
        );
        // A scoped caller: only scopes it holds, never none.
        let scoped = Subject::User(Caller {
            id: U1,
            org: Some(A),
            admin: false,
            is_service_user: true,
            kind: ActorKind::Service,
            scopes: Some(s(&["tokens:write", "users:*"])),
            derived: false,
        });
        assert!(may_receive_token(
            &scoped,
            true,
            &s(&["users:read", "users:*", "tokens:write"])
        )
        .is_ok());
        assert_eq!(
            may_receive_token(&scoped, true, &[])
                .unwrap_err()
                .sqlstate(),
            "42501"
        );
        let e = may_receive_token(&scoped, true, &s(&["users:read", "credentials:reveal"]))
            .unwrap_err();
        assert_eq!(
            e.detail.as_deref(),
            Some(r#"scope "credentials:reveal" is not held"#)
        );
        assert!(
            may_receive_token(&scoped, true, &s(&["*"])).is_err(),
            "* is wider than users:*"
        );
    }

    #[test]
    fn relations() {
        assert_eq!(relation(&Subject::System, U1, Some(A)), Relation::System);
        assert_eq!(
            relation(&user(U2, A, true), U1, Some(A)),
            Relation::OrgAdmin
        );
        assert_eq!(
            relation(&user(U2, A, true), U2, Some(A)),
            Relation::OrgAdmin
        );
        assert_eq!(relation(&user(U1, A, false), U1, Some(A)), Relation::Myself);
        assert_eq!(
            relation(&user(U2, A, false), U1, Some(A)),
            Relation::Stranger,
            "same org, not admin"
        );
        assert_eq!(
            relation(&user(U3, B, true), U1, Some(A)),
            Relation::Stranger,
            "other org's admin"
        );
        // An admin without an organization administers no one else.
        let loose = Subject::User(Caller {
            id: U3,
            org: None,
            admin: true,
            is_service_user: false,
            kind: ActorKind::User,
            scopes: None,
            derived: false,
        });
        assert_eq!(relation(&loose, U1, None), Relation::Stranger);
    }

    #[test]
    fn strangers_get_not_found_and_users_get_forbidden() {
        assert_eq!(
            may_read_user(Relation::Stranger).unwrap_err().sqlstate(),
            "P0002"
        );
        assert_eq!(
            may_administer_user(Relation::Stranger)
                .unwrap_err()
                .sqlstate(),
            "P0002"
        );
        assert_eq!(
            may_administer_user(Relation::Myself)
                .unwrap_err()
                .sqlstate(),
            "42501"
        );
        assert!(may_administer_user(Relation::OrgAdmin).is_ok());
        assert_eq!(
            may_create_service_user(&user(U1, A, false), A)
                .unwrap_err()
                .sqlstate(),
            "42501"
        );
        assert_eq!(
            may_create_service_user(&user(U3, B, true), A)
                .unwrap_err()
                .sqlstate(),
            "P0002"
        );
        assert!(may_create_service_user(&user(U2, A, true), A).is_ok());
        assert!(may_create_service_user(&Subject::System, A).is_ok());
    }

    #[test]
    fn field_classes() {
        assert!(may_set(Relation::Myself, FieldClass::Profile));
        assert!(!may_set(Relation::Myself, FieldClass::Admin));
        assert!(may_set(Relation::OrgAdmin, FieldClass::Admin));
        assert!(!may_set(Relation::OrgAdmin, FieldClass::System));
        assert!(may_set(Relation::System, FieldClass::System));
        assert!(!may_set(Relation::Stranger, FieldClass::Profile));
    }

    #[test]
    fn scopes() {
        let mut c = Caller {
            id: U1,
            org: Some(A),
            admin: false,
            is_service_user: true,
            kind: ActorKind::Service,
            scopes: Some(vec!["credentials:read".into()]),
            derived: false,
        };
        assert!(require_scope(&Subject::User(c.clone()), "credentials:read").is_ok());
        assert_eq!(
            require_scope(&Subject::User(c.clone()), "credentials:write")
                .unwrap_err()
                .sqlstate(),
            "42501"
        );
        c.scopes = None;
        assert!(require_scope(&Subject::User(c), "credentials:write").is_ok());
        assert!(require_scope(&Subject::System, "anything").is_ok());
    }

    #[test]
    fn credential_rules() {
        let own = CredentialFacts {
            owner: U1,
            org: Some(A),
            is_system: false,
            enabled: true,
        };
        let sys = CredentialFacts {
            is_system: true,
            ..own
        };
        let off = CredentialFacts {
            enabled: false,
            ..own
        };
        let me = user(U1, A, false);
        let admin = user(U2, A, true);
        let peer = user(U3, A, false);
        let other_admin = user(U3, B, true);
        use CredentialOp::*;
        for op in [Read, Change, Delete, Reveal, Use] {
            assert!(may_credential(&me, &own, op).is_ok(), "{op:?}");
            assert!(may_credential(&Subject::System, &own, op).is_ok(), "{op:?}");
            assert_eq!(
                may_credential(&peer, &own, op).unwrap_err().sqlstate(),
                "P0002",
                "{op:?}"
            );
            assert_eq!(
                may_credential(&other_admin, &own, op)
                    .unwrap_err()
                    .sqlstate(),
                "P0002",
                "{op:?}"
            );
        }
        assert!(may_credential(&admin, &own, Read).is_ok());
        for op in [Change, Delete, Reveal, Use] {
            assert_eq!(
                may_credential(&admin, &own, op).unwrap_err().sqlstate(),
                "42501",
                "{op:?}"
            );
        }
        assert_eq!(
            may_credential(&me, &sys, Change).unwrap_err().sqlstate(),
            "42501"
        );
        assert_eq!(
            may_credential(&me, &sys, Delete).unwrap_err().sqlstate(),
            "42501"
        );
        assert!(may_credential(&me, &sys, Reveal).is_ok());
        assert!(may_credential(&Subject::System, &sys, Delete).is_ok());
        assert_eq!(
            may_credential(&me, &off, Reveal).unwrap_err().sqlstate(),
            "42501"
        );
        assert_eq!(
            may_credential(&Subject::System, &off, Reveal)
                .unwrap_err()
                .sqlstate(),
            "42501"
        );
        assert!(
            may_credential(&me, &off, Change).is_ok(),
            "re-enabling is a change"
        );
    }
}
