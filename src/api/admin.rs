//! `identity.grant_access(role, level)`: the least-privilege grant sets of
//! API.md sections 2 and 9. Everything else stays revoked from PUBLIC
//! (sql/grants.sql).

use crate::core::error::{IdentityError, Kind};
use crate::pg::error::PgResult;
use crate::pg::error::{Pg, PgError};
use crate::pg::spi;
use pgrx::prelude::*;
use serde_json::json;

/// What each level may execute. A function appears here only once it exists;
/// the README's grant table is these lists.
/// What Supabase Auth's hook caller needs, and nothing more.
pub const HOOK_FUNCTIONS: &[&str] = &["identity.custom_access_token_hook(jsonb)"];

/// The per-row RLS helpers: every level whose role may query a table with
/// policies that call them (policies run as the querying role) gets them.
pub const RLS_HELPER_FUNCTIONS: &[&str] = &[
    "identity.uid()",
    "identity.jwt()",
    "identity.claim(text)",
    "identity.org_id()",
    "identity.user_role()",
    "identity.is_service_user()",
    "identity.is_admin()",
    "identity.has_role(text)",
    "identity.has_scope(text)",
];
/// Self-service functions for end users (e.g. Supabase `authenticated`),
/// with the RLS helpers.
pub const USER_FUNCTIONS: &[&str] = &[
    "identity.decode_jwt(text)",
    "identity.verify_jwt(text, text)",
    "identity.try_verify_jwt(text, text)",
    // The token is the credential: the service-user sign-in path.
    "identity.verify_api_token(text)",
    "identity.try_verify_api_token(text)",
    "identity.exchange_api_token(text, interval)",
    "identity.create_api_token(uuid, text, interval, text[])",
    "identity.list_api_tokens(uuid)",
    "identity.revoke_api_token(uuid)",
    "identity.rotate_api_token(uuid, interval)",
    "identity.create_websocket_token(uuid, interval)",
    "identity.create_agent_token(uuid, interval, text[])",
    "identity.jwks()",
    "identity.actor()",
    "identity.authenticate(text)",
    "identity.pre_request()",
    // Sections 6 and 9: each checks the actor (self / org admin / system).
    "identity.create_service_user(text, uuid, uuid, text, text)",
    "identity.update_user(uuid, jsonb)",
    "identity.suspend_user(uuid, text)",
    "identity.reactivate_user(uuid)",
    "identity.delete_user(uuid)",
    "identity.user_by_id(uuid)",
    "identity.user_by_external_id(text)",
    "identity.user_by_api_token(text)",
    "identity.\"current_user\"()",
    "identity.feature_flags(uuid)",
    "identity.subscription_status(uuid)",
    // Section 7: the owner's own credentials.
    "identity.create_credential(text, text, text, boolean, numeric)",
    "identity.list_credentials()",
    "identity.get_credential(uuid)",
    "identity.update_credential(uuid, jsonb)",
    "identity.delete_credential(uuid)",
    "identity.set_default_credential(uuid)",
    "identity.set_credential_enabled(uuid, boolean)",
    "identity.reveal_credential_secret(uuid)",
    "identity.record_credential_usage(uuid, numeric, bigint)",
    "identity.credential_usage(uuid)",
    // Section 11: a client holding an external issuer's token gets ours.
    "identity.exchange_external_token(text, interval)",
];

/// Who receives an identity provider's webhooks (e.g. PostgREST's `anon`,
/// since the provider has no token of ours): the signature is the
/// credential, so this level may call handle_webhook and nothing else.
pub const WEBHOOK_FUNCTIONS: &[&str] = &["identity.handle_webhook(text, jsonb, text)"];

/// PostgREST's anonymous role (`anon`): what an anonymous request runs before
/// it has an identity, and nothing more. pre_request (which verifies an
/// `x-api-key` and switches the request to `authenticated`), the webhook
/// entry point (its signature is the credential), and the RLS helpers,
/// because a policy that calls them runs as the querying role (for an
/// anonymous request they answer NULL; `RLS_HELPER_FUNCTIONS`, added in
/// `functions_for`). No token is minted, read or changed at this level.
pub const ANON_FUNCTIONS: &[&str] = &[
    "identity.pre_request()",
    "identity.handle_webhook(text, jsonb, text)",
];
/// Back-office callers (e.g. Supabase `service_role`) get the user set and
/// these: they may mint, revoke and manage keys and tokens.
pub const ADMIN_ONLY_FUNCTIONS: &[&str] = &[
    "identity.explain_jwt(text)",
    "identity.sign_jwt(jsonb, interval)",
    "identity.issue_access_token(uuid, interval)",
    "identity.revoke_jwt(text, timestamp with time zone)",
    "identity.revoke_session(uuid)",
    "identity.generate_signing_key(text)",
    "identity.activate_signing_key(text)",
    "identity.retire_signing_key(text)",
    "identity.revoke_signing_key(text)",
    "identity.rekey(integer)",
    "identity.verify_audit_log()",
    // System-only acts of sections 6, 7 and 9.
    "identity.create_organization(text)",
    "identity.set_organization_external_id(uuid, text, text)",
    "identity.provision_user(text, text, text, text, uuid, uuid)",
    "identity.set_feature_flag(text, boolean, integer, text)",
    "identity.set_feature_flag_override(text, uuid, boolean)",
    "identity.create_system_credential(uuid, text, text, numeric)",
    // Section 11.
    "identity.register_issuer(text, jsonb, jsonb)",
    "identity.set_issuer_jwks(text, jsonb)",
    "identity.remove_issuer(text)",
    "identity.list_issuers()",
    "identity.handle_webhook(text, jsonb, text)",
    // Section 13.
    "identity.link_supabase_auth()",
    "identity.unlink_supabase_auth()",
];

/// Column-level SELECT the `user` level gets, under the RLS policies of
/// sql/grants.sql. Never token_hash or ciphertext.
pub const USER_TABLE_GRANTS: &[&str] = &[
    "grant select (id, name, metadata, created_at, updated_at) on identity.organizations to {role}",
    "grant select (id, email, external_id, first_name, last_name, organization_id, user_role, is_service_user, status, \
     application_id, application_name, description, created_by, created_by_name, metadata, created_at, updated_at, phone) \
     on identity.users to {role}",
    "grant select (id, user_id, kind, name, display_prefix, last4, scopes, expires_at, revoked_at, last_used_at, \
     rotated_from, created_at) on identity.api_tokens to {role}",
    "grant select (id, user_id, organization_id, provider, name, last4, is_default, is_system, enabled, credit_limit, \
     usage_total, exhausted_at, created_at, updated_at) on identity.credentials to {role}",
    "grant select on identity.credential_usage to {role}",
    "grant select on identity.subscriptions to {role}",
    "grant select on identity.feature_flags to {role}",
    "grant select on identity.feature_flag_overrides to {role}",
    "grant select on identity.audit_log to {role}",
    "grant select (issuer, subject, user_id, created_at, last_seen_at) on identity.identities to {role}",
];

pub fn functions_for(level: &str) -> Option<Vec<&'static str>> {
    match level {
        "hook" => Some(HOOK_FUNCTIONS.to_vec()),
        "user" => Some([USER_FUNCTIONS, RLS_HELPER_FUNCTIONS].concat()),
        "webhook" => Some(WEBHOOK_FUNCTIONS.to_vec()),
        "anon" => Some([ANON_FUNCTIONS, RLS_HELPER_FUNCTIONS].concat()),
        "admin" => Some([USER_FUNCTIONS, RLS_HELPER_FUNCTIONS, ADMIN_ONLY_FUNCTIONS].concat()),
        _ => None,
    }
}

/// `{valid, rows_checked, rows_pending, first_bad_id}`: chains every
/// committed row not chained yet, then recomputes every audit row's hash
/// and its link to the previous row of its chain, and every chain's tip
/// (sql/queries/audit_verify.sql). A row changed or deleted behind the
/// append-only trigger's back (a superuser disabling it) makes it invalid
/// and names the first bad id. Level admin, system only.
#[pg_extern(schema = "identity", volatile)]
fn verify_audit_log() -> PgResult<pgrx::JsonB> {
    let s = crate::api::actor::subject()?;
    crate::core::authz::require_system(&s, "only system may verify the audit trail").pg()?;
    spi::privileged(|| {
        // Chain whatever committed and is not chained yet, as the writer
        // would (a row whose writer left before it committed), then check.
        if crate::pg::gucs::transaction_writable() {
            spi::run("select identity.audit_chain_pending(2147483647)", &[])?;
        }
        spi::one::<pgrx::JsonB>(include_str!("../../sql/queries/audit_verify.sql"), &[])
    })?
    .ok_or_else(|| IdentityError::new(Kind::NotFound, "no answer").pg_error())
}

/// Grants `role` what `level` needs: USAGE on schema identity and EXECUTE on
/// that level's functions. Superuser only (it changes privileges of objects
/// the extension owns). Audited.
#[pg_extern(schema = "identity", volatile, parallel_unsafe)]
fn grant_access(role: Option<&str>, level: Option<&str>) -> PgResult<()> {
    if !crate::pg::gucs::current_role_is_superuser() {
        return Err(
            IdentityError::new(Kind::Forbidden, "only a superuser may grant access").pg_error(),
        );
    }
    let role = role
        .filter(|r| !r.is_empty())
        .ok_or_else(|| IdentityError::invalid("role is required"))
        .pg()?;
    let level = level
        .ok_or_else(|| IdentityError::invalid("level is required"))
        .pg()?;
    let functions = functions_for(level)
        .ok_or_else(|| {
            IdentityError::invalid("unknown access level")
                .detail(format!("level {level:?}"))
                .hint("use one of: hook, anon, user, admin, webhook")
        })
        .pg()?;
    if !spi::role_exists(role)? {
        return Err(IdentityError::new(Kind::NotFound, "role does not exist")
            .detail(format!("role {role:?}"))
            .pg_error());
    }
    spi::run_for_role("grant usage on schema identity to {role}", role)?;
    for f in &functions {
        // `f` comes from the constant table above, never from the caller.
        spi::run_for_role(&format!("grant execute on function {f} to {{role}}"), role)?;
    }
    if level == "user" {
        for g in USER_TABLE_GRANTS {
            spi::run_for_role(g, role)?;
        }
    }
    spi::audit(spi::Audit {
        actor_id: None,
        actor_kind: "system",
        organization_id: None,
        action: "access.granted",
        target_type: "role",
        target_id: Some(role),
        details: json!({ "level": level, "functions": functions }),
    })
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn grant_access_user_lets_the_role_call_decode_jwt() {
        Spi::run("create role idt_app nologin").unwrap();
        let before = Spi::get_one::<bool>(
            "select has_function_privilege('idt_app', 'identity.decode_jwt(text)', 'execute')",
        )
        .unwrap();
        assert_eq!(before, Some(false), "PUBLIC must not have EXECUTE");
        Spi::run("select identity.grant_access('idt_app', 'user')").unwrap();
        let after = Spi::get_one::<bool>(
            "select has_function_privilege('idt_app', 'identity.decode_jwt(text)', 'execute')",
        )
        .unwrap();
        assert_eq!(after, Some(true));
        let audited = Spi::get_one::<i64>(
            "select count(*) from identity.audit_log where action = 'access.granted' and target_id = 'idt_app'",
        )
        .unwrap();
        assert_eq!(audited, Some(1));
    }

    #[pg_test(error = "unknown access level")]
    fn grant_access_rejects_unknown_level() {
        Spi::run("create role idt_app2 nologin").unwrap();
        Spi::run("select identity.grant_access('idt_app2', 'root')").unwrap();
    }

    #[pg_test(error = "role does not exist")]
    fn grant_access_rejects_unknown_role() {
        Spi::run("select identity.grant_access('no_such_role_x', 'user')").unwrap();
    }
}
