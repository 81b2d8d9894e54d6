-- Policies and grants (runs last, after every function exists).
--
-- Row level security: SELECT policies built on the RLS helpers. Users see
-- their own rows; org admins (user_role admin) their organization's; the
-- audit trail only org admins, for their organization. A token whose claims
-- carry scopes (identity.has_scope) sees a table only with its scope:
-- users:read, credentials:read, audit:read. No policy allows
-- INSERT, UPDATE or DELETE: writes go through the extension's functions.
-- events, signing_keys, revoked_jwts and revoked_sessions have no policy at
-- all: only the owner (the functions) reads them.
create policy member_reads_own_org on identity.organizations for select
    using (id = identity.org_id() and identity.has_scope('users:read'));
create policy self_or_org_admin on identity.users for select
    using ((id = identity.uid() or (identity.is_admin() and organization_id = identity.org_id()))
           and identity.has_scope('users:read'));
create policy self_or_org_admin on identity.api_tokens for select
    using ((user_id = identity.uid()
            or (identity.is_admin() and user_id in (select u.id from identity.users u where u.organization_id = identity.org_id())))
           and identity.has_scope('users:read'));
create policy self_or_org_admin on identity.credentials for select
    using ((user_id = identity.uid() or (identity.is_admin() and organization_id = identity.org_id()))
           and identity.has_scope('credentials:read'));
create policy through_visible_credential on identity.credential_usage for select
    using (credential_id in (select c.id from identity.credentials c));
create policy self_or_org_admin on identity.subscriptions for select
    using ((user_id = identity.uid()
            or (identity.is_admin() and user_id in (select u.id from identity.users u where u.organization_id = identity.org_id())))
           and identity.has_scope('users:read'));
-- Flags are the deployment's, not an organization's (no organization_id):
-- their list and descriptions are read directly by organization admins only
-- (with users:read); every user reads their own answers through
-- identity.feature_flags() and current_user().
create policy signed_in_users on identity.feature_flags for select
    using (identity.is_admin() and identity.org_id() is not null and identity.has_scope('users:read'));
create policy self on identity.feature_flag_overrides for select
    using (user_id = identity.uid() and identity.has_scope('users:read'));
create policy self on identity.identities for select
    using (user_id = identity.uid() and identity.has_scope('users:read'));
create policy org_admin on identity.audit_log for select
    using (identity.is_admin() and organization_id = identity.org_id() and identity.has_scope('audit:read'));

-- The per-row helpers are planned as once-per-execution InitPlans, as if
-- every policy and query had wrapped them in (select ...) by hand
-- (src/pg/planner.rs). Support functions are looked up when a query is
-- planned, so attaching them after the policies exist is enough.
alter function identity.uid() support identity.helper_support;
alter function identity.org_id() support identity.helper_support;
alter function identity.is_service_user() support identity.helper_support;
alter function identity.user_role() support identity.helper_support;
alter function identity.is_admin() support identity.helper_support;
alter function identity.has_role(text) support identity.helper_support;
alter function identity.has_scope(text) support identity.helper_support;
alter function identity.claim(text) support identity.helper_support;

-- Least privilege: nothing in schema identity is usable by PUBLIC.
-- identity.grant_access(role, level) hands out exactly what a level needs.
revoke all on schema identity from public;
revoke all on all tables in schema identity from public;
revoke all on all sequences in schema identity from public;
revoke all on all functions in schema identity from public;

-- The background workers act as identity_worker (sql/schema.sql): the four
-- functions they call, and nothing else.
grant usage on schema identity to identity_worker;
grant execute on function identity.worker_write_audit(jsonb) to identity_worker;
grant execute on function identity.worker_jwks_due(boolean) to identity_worker;
grant execute on function identity.worker_jwks_next() to identity_worker;
grant execute on function identity.worker_jwks_store(text, text, jsonb, text) to identity_worker;
