-- identity 0.1.0 -> 0.2.0, run by ALTER EXTENSION identity UPDATE.
--
-- 0.1.0 is the tree at commit 37ab521. Every schema change after it is
-- repeated here in the commit that makes it, so an upgraded database has
-- exactly the catalog of a fresh CREATE EXTENSION (pg_test/upgrade.sh checks
-- it object by object, and that every row stays usable). No row is rewritten.

-- Backups keep everything (README "Backup and restore"): the tables that
-- hold data, and the sequences behind their identity columns, are dumped by
-- pg_dump as an extension's configuration tables.
select pg_catalog.pg_extension_config_dump('identity.organizations', '');
select pg_catalog.pg_extension_config_dump('identity.users', '');
select pg_catalog.pg_extension_config_dump('identity.deleted_users', '');
select pg_catalog.pg_extension_config_dump('identity.api_tokens', '');
select pg_catalog.pg_extension_config_dump('identity.signing_keys', '');
select pg_catalog.pg_extension_config_dump('identity.revoked_jwts', '');
select pg_catalog.pg_extension_config_dump('identity.revoked_sessions', '');
select pg_catalog.pg_extension_config_dump('identity.credentials', '');
select pg_catalog.pg_extension_config_dump('identity.credential_usage', '');
select pg_catalog.pg_extension_config_dump('identity.subscriptions', '');
select pg_catalog.pg_extension_config_dump('identity.feature_flags', '');
select pg_catalog.pg_extension_config_dump('identity.feature_flag_overrides', '');
select pg_catalog.pg_extension_config_dump('identity.audit_log', '');
select pg_catalog.pg_extension_config_dump('identity.events', '');
select pg_catalog.pg_extension_config_dump('identity.credential_usage_id_seq', '');
select pg_catalog.pg_extension_config_dump('identity.audit_log_id_seq', '');
select pg_catalog.pg_extension_config_dump('identity.events_id_seq', '');

-- PostgREST's db-pre-request (API.md 8).
CREATE FUNCTION identity."pre_request"() RETURNS void VOLATILE PARALLEL UNSAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'identity_pre_request';
COMMENT ON FUNCTION identity."pre_request"() IS
    'PostgREST db-pre-request: verifies x-api-key (or, in mode verified, the Bearer JWT), pins its claims for the transaction and switches to its role; PT401 when it does not authenticate.';
revoke all on function identity."pre_request"() from public;
-- It belongs to the user level: every role granted that level under 0.1.0
-- (identity.grant_access(role, 'user'), which grants identity.authenticate)
-- gets it too, as grant_access gives it now.
do $$
declare
    r regrole;
begin
    for r in
        select distinct a.grantee::regrole
        from pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a
        where p.oid = 'identity.authenticate(text)'::pg_catalog.regprocedure
          and a.privilege_type = 'EXECUTE' and a.grantee <> 0 and a.grantee <> p.proowner
    loop
        execute pg_catalog.format('grant execute on function identity."pre_request"() to %s', r);
    end loop;
end
$$;
