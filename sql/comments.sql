-- What each function does and who may call it, shown by \df+ and
-- obj_description(). Levels are identity.grant_access's (hook, user, admin, webhook);
-- "system" is the admin level with no request claims. The README's function
-- reference says more; interop/test_docs.py holds the two to the same names.
comment on function identity.custom_access_token_hook(jsonb) is
    'Supabase Auth custom access token hook: adds is_service_user, user_role, organization_id (and application_id) from identity.users; 403 error object for suspended or disabled users, 400 for malformed events. Level hook.';
comment on function identity.decode_jwt(text) is
    'Decodes a JWT''s header and payload without verifying it (debugging). Levels user, admin.';
comment on function identity.sign_jwt(jsonb, interval) is
    'Signs claims (HS256 with identity.jwt_secret, or the active signing key), filling iat, exp, jti, iss and aud. Level admin.';
comment on function identity.issue_access_token(uuid, interval) is
    'An access JWT for a user with Supabase-shaped claims plus the hook''s. Level admin.';
comment on function identity.verify_jwt(text, text) is
    'Verifies a JWT (signature, alg, exp/nbf/iat, aud, iss, revocations, the user''s state) and returns its claims; 28000 with the reason in DETAIL. Levels user, admin.';
comment on function identity.try_verify_jwt(text, text) is
    'verify_jwt without an exception: one row (valid, claims, reason, code: the reason code of the refusal, NULL when valid). Levels user, admin.';
comment on function identity.explain_jwt(text) is
    'Every verification check of a JWT in order, with its outcome, for troubleshooting. Level admin.';
comment on function identity.generate_signing_key(text) is
    'A new ES256, RS256 or EdDSA signing key in state next (published, not signing); the private key sealed under identity.encryption_key. Returns the kid. Level admin; audited.';
comment on function identity.activate_signing_key(text) is
    'Makes a key the one every issuer signs with; the previous active key is retired. Level admin; audited.';
comment on function identity.retire_signing_key(text) is
    'Stops a key signing; it keeps verifying and stays in jwks() for 366 days. Level admin; audited.';
comment on function identity.revoke_signing_key(text) is
    'Revokes a signing key for good: tokens naming it are refused from the next verification on (key revoked), and it leaves jwks(); not the active key (55000). Level admin; audited.';
comment on function identity.rekey(integer) is
    'Re-seals up to batch_size credentials and private signing keys under the current identity.encryption_key; returns how many; call until 0, then the previous keys can go. Level admin, system only; audited.';
comment on function identity.jwks() is
    'The public JWKS of the active, next and unexpired retired keys. Levels user, admin.';
comment on function identity.revoke_jwt(text, timestamp with time zone) is
    'Revokes a JWT by jti until it expires; effective for the next verification everywhere. Level admin; audited.';
comment on function identity.revoke_session(uuid) is
    'Revokes every JWT carrying a session_id. Level admin; audited.';
comment on function identity.create_api_token(uuid, text, interval, text[]) is
    'A new API token (shown once; only its hash is stored) for the caller, a service user of the organization the caller administers, or anyone for system. Levels user, admin; audited.';
comment on function identity.verify_api_token(text) is
    'The principal of an API token (checksum first, then an index probe by hash); 28000 when it does not authenticate. Works on standbys. Levels user, admin.';
comment on function identity.try_verify_api_token(text) is
    'verify_api_token without an exception, for any text: one row (valid, code: the reason code of the refusal, principal: what verify_api_token answers). Levels user, admin.';
comment on function identity.exchange_api_token(text, interval) is
    'An access JWT for an API token''s user, valid while the token stands. Levels user, admin; audited.';
comment on function identity.list_api_tokens(uuid) is
    'API tokens without secrets: the caller''s own, or a user''s the caller may manage. Levels user, admin.';
comment on function identity.revoke_api_token(uuid) is
    'Revokes an API token: its user, an admin of their organization, or system. Levels user, admin; audited.';
comment on function identity.rotate_api_token(uuid, interval) is
    'A new API token in place of another, which is revoked now or after a grace period. Levels user, admin; audited.';
comment on function identity.create_websocket_token(uuid, interval) is
    'A short-lived JWT with aud websocket for the caller (at most 15 minutes). Levels user, admin.';
comment on function identity.create_agent_token(uuid, interval, text[]) is
    'A JWT with aud agent and an act claim naming the agent, with scopes within the caller''s (at most 24 hours). Levels user, admin.';
comment on function identity.create_organization(text) is
    'A new organization. Level admin, system only; audited.';
comment on function identity.set_organization_external_id(uuid, text, text) is
    'Sets or clears an organization''s identity-provider id (Clerk''s org_...) and the registered issuer it is an id of: only that issuer''s organization claim (e.g. o.id) places its users there (with no issuer, no claim does). Level admin, system only; audited.';
comment on function identity.provision_user(text, text, text, text, uuid, uuid) is
    'Creates a user from an identity provider (idempotent on external_id) with a first API token, a trial and events. Level admin, system only; audited.';
comment on function identity.create_service_user(text, uuid, uuid, text, text) is
    'A service user of an organization with its first API token (shown once): an admin of that organization, or system. Levels user, admin; audited.';
comment on function identity.update_user(uuid, jsonb) is
    'Changes a user''s fields, each allowed by who the caller is (self, organization admin, system). Levels user, admin; audited.';
comment on function identity.suspend_user(uuid, text) is
    'Suspends a user from the next call on: an admin of their organization, or system. Levels user, admin; audited.';
comment on function identity.reactivate_user(uuid) is
    'Lets a suspended user sign in again (new tokens only): an admin of their organization, or system. Levels user, admin; audited.';
comment on function identity.delete_user(uuid) is
    'Deletes a user with their tokens and credentials; a tombstone keeps their JWTs refused. An admin of their organization, or system. Levels user, admin; audited.';
comment on function identity.user_by_id(uuid) is
    'A user by id: the user, an admin of their organization, or system (P0002 otherwise). Levels user, admin.';
comment on function identity.user_by_external_id(text) is
    'A user by the identity provider''s id, visible as for user_by_id. Levels user, admin.';
comment on function identity.user_by_api_token(text) is
    'The user an API token authenticates, visible as for user_by_id. Levels user, admin.';
comment on function identity."current_user"() is
    'The caller''s profile: user, organization, role, websocket and agent tokens, feature flags, subscription. Levels user, admin.';
comment on function identity.set_feature_flag(text, boolean, integer, text) is
    'Creates or changes a feature flag and its rollout percentage. Level admin, system only; audited.';
comment on function identity.set_feature_flag_override(text, uuid, boolean) is
    'Turns a flag on or off for one user (NULL removes the override). Level admin, system only; audited.';
comment on function identity.feature_flags(uuid) is
    'Every flag''s answer for the caller or a visible user. Levels user, admin.';
comment on function identity.subscription_status(uuid) is
    'The subscription of the caller or a visible user: trialing, active, expired, canceled or none. Levels user, admin.';
comment on function identity.create_credential(text, text, text, boolean, numeric) is
    'A credential of the signed-in caller, its secret sealed under identity.encryption_key (only the last 4 kept in clear). Levels user, admin; audited.';
comment on function identity.list_credentials() is
    'The caller''s credentials without secrets (system: all). Levels user, admin; audited.';
comment on function identity.get_credential(uuid) is
    'One credential without its secret: the owner, an admin of its organization, or system. Levels user, admin; audited.';
comment on function identity.update_credential(uuid, jsonb) is
    'Changes a credential''s name, credit limit or secret: the owner (not on system credentials), or system. Levels user, admin; audited.';
comment on function identity.delete_credential(uuid) is
    'Deletes a credential: the owner (not system credentials), or system. Levels user, admin; audited.';
comment on function identity.set_default_credential(uuid) is
    'Makes a credential its owner''s only default: the owner, or system. Levels user, admin; audited.';
comment on function identity.set_credential_enabled(uuid, boolean) is
    'Enables or disables a credential (disabling clears the default): the owner, or system. Levels user, admin; audited.';
comment on function identity.reveal_credential_secret(uuid) is
    'The decrypted secret of an enabled credential: the owner, or system. Levels user, admin; audited.';
comment on function identity.record_credential_usage(uuid, numeric, bigint) is
    'Records usage against a credential, refused (nothing recorded) past its credit limit: the owner, or system. Levels user, admin; audited.';
comment on function identity.credential_usage(uuid) is
    'A credential''s usage: calls, totals, remaining credit, recent calls; visible as get_credential. Levels user, admin.';
comment on function identity.create_system_credential(uuid, text, text, numeric) is
    'A system-protected credential for a user (their default when they have none). Level admin, system only; audited.';
comment on function identity.uid() is
    'The sub of the current claims as uuid, or NULL (for RLS policies). Levels user, admin.';
comment on function identity.org_id() is
    'The organization_id claim as uuid, or NULL (for RLS policies). Levels user, admin.';
comment on function identity.is_service_user() is
    'The is_service_user claim, or NULL (for RLS policies). Levels user, admin.';
comment on function identity.helper_support(internal) is
    'Planner support function of the per-row helpers: an unwrapped call is planned as a once-per-execution InitPlan, as (select identity.uid()) is. Internal, not callable.';
comment on function identity.jwt() is
    'The current claims as jsonb, or NULL. Levels user, admin.';
comment on function identity.claim(text) is
    'One claim of the current claims as text, or NULL. Levels user, admin.';
comment on function identity.user_role() is
    'The user_role claim, or NULL. Levels user, admin.';
comment on function identity.is_admin() is
    'Whether the user_role claim is admin; NULL without claims. Levels user, admin.';
comment on function identity.has_role(text) is
    'Whether user_role or the Postgres role claim is the given role; NULL without claims. Levels user, admin.';
comment on function identity.has_scope(text) is
    'Whether the claims'' scopes allow a scope (no list: everything); NULL without claims. Levels user, admin.';
comment on function identity.actor() is
    'Who is acting: user_id, organization_id, user_role, is_service_user and kind (user, service, agent, system, anon). Levels user, admin.';
comment on function identity.authenticate(text) is
    'Verifies a JWT or an API token and pins its claims for the current transaction only (NULL and a warning when it does not authenticate). Levels user, admin.';
comment on function identity.pre_request() is
    'PostgREST db-pre-request: verifies x-api-key (or, in mode verified, the Bearer JWT), pins its claims for the transaction and switches to its role; PT401 when it does not authenticate. Levels user, admin.';
comment on function identity.grant_access(text, text) is
    'Grants a role a level (hook, user or admin): USAGE on the schema, EXECUTE on that level''s functions, column SELECT for user. Superuser only; audited.';
comment on function identity.revocation_added() is
    'Trigger: adds a revoked jti or session to this database''s shared revocation filter. Internal, not callable.';
comment on function identity.cached_table_changed() is
    'Trigger: tells every backend to reload its copy of this table (revocations, signing keys, users, API tokens). Internal, not callable.';
comment on function identity.verify_audit_log() is
    'Chains what is pending, then recomputes the audit trail''s hash chains: {valid, rows_checked, rows_pending, first_bad_id}. Level admin, system only.';
comment on function identity.register_issuer(text, jsonb, jsonb) is
    'Trusts an external identity provider (Clerk, Auth0, Supabase Auth, any OIDC issuer): its exact iss, its public JWKS (RS256, ES256, EdDSA; or options.jwks_uri, fetched by the background worker) and checked options (audience or authorized_parties, one of them required unless any_audience is true; leeway, provisioning, organization_id, email_claim, email_verified_claim, name_claims, match_external_id, webhook_secret sealed at rest). Replaces them for an issuer already registered. Level admin, system only; audited.';
comment on function identity.set_issuer_jwks(text, jsonb) is
    'Replaces a registered issuer''s public keys (a rotation, effective from this commit). Level admin, system only; audited.';
comment on function identity.remove_issuer(text) is
    'Stops trusting an issuer: its tokens and webhooks are refused from this commit on; its identities go, its users stay. Level admin, system only; audited.';
comment on function identity.list_issuers() is
    'Every registered issuer: options (never the webhook secret), kids, the jwks_uri fetch state, how many users it signs in. Level admin, system only.';
comment on function identity.exchange_external_token(text, interval) is
    'Verifies a registered issuer''s token as identity.authenticate does (linking or provisioning its user) and returns an access JWT of ours with the hook''s claims and amr naming the issuer. Levels user, admin; audited.';
comment on function identity.handle_webhook(text, jsonb, text) is
    'One Svix-signed webhook delivery of an issuer (Clerk user.created, user.updated, user.deleted), idempotent on svix-id: {status: processed | duplicate | ignored, user_id}; a bad signature is 28000 and writes nothing. Levels webhook, admin; audited.';
comment on function identity.audit_chain_pending(integer) is
    'Chains committed audit rows not chained yet to the tips of their chains (prev_id, prev_hash, row_hash); run by the background writer. Internal.';
comment on function identity.audit_log_hash(identity.audit_log) is
    'The hash of an audit row: SHA-256 of its predecessor''s hash and its columns. Internal (the chain trigger and verify_audit_log).';
comment on function identity.audit_log_refuse_change() is
    'Trigger: refuses UPDATE (but filling the chain columns of a row not chained yet), DELETE and TRUNCATE of identity.audit_log. Internal, not callable.';
comment on function identity.worker_write_audit(jsonb) is
    'The audit writer''s statement: inserts a batch of queued audit records (a jsonb array of objects) and chains what committed, unless another chainer holds the chain. Internal: the background writer, as identity_worker.';
comment on function identity.worker_jwks_due(boolean) is
    'The issuers whose jwks_uri the JWKS fetcher fetches now (unknown_kid: a token named a kid not in the set). Internal: the background fetcher, as identity_worker.';
comment on function identity.worker_jwks_next() is
    'Seconds until the next scheduled JWKS fetch (NULL: no issuer has a jwks_uri). Internal: the background fetcher, as identity_worker.';
comment on function identity.worker_jwks_store(text, text, jsonb, text) is
    'Stores a JWKS fetch of an issuer''s jwks_uri: the valid set, or why it failed. Internal: the background fetcher, as identity_worker.';
comment on table identity.mutexes is
    'Locks no other role can take: row 0 serialises the audit chainers; rows 1 to 1024 a subject''s first sign-in and webhooks and a user''s credential changes (a key hashed to a row). Never written after the install.';
comment on function identity.link_supabase_auth() is
    'From now on identity.users follows Supabase Auth''s auth.users (email, phone, bans, deletes; flags from raw_app_meta_data at creation), and every auth user with a confirmed email gets the identity user of the same id. Answers {created, linked, unlinked}. Level admin, system only; idempotent; audited.';
comment on function identity.unlink_supabase_auth() is
    'Stops following auth.users: its triggers and the links go, the users stay. Answers {unlinked}. Level admin, system only; audited.';
comment on function identity.supabase_auth_follow() is
    'Trigger on auth.users (link_supabase_auth): follows the row into identity.users; never fails or delays Supabase Auth''s statement. Internal.';
comment on table identity.supabase_auth_users is
    'The users identity follows from auth.users (link_supabase_auth), and whether a Supabase Auth ban suspended them.';
