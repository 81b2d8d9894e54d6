\i pg_test/fixtures.sql
-- The audit trail is tamper-evident: each row is chained to the previous
-- row of its organization's chain (or the global chain) by a hash, and
-- identity.verify_audit_log() recomputes every chain.
select identity.create_organization('Chain Org A') as org_a \gset
select identity.create_organization('Chain Org B') as org_b \gset
select identity.provision_user('ext-chain-1', 'chain1@example.com', organization_id => :'org_a') is not null as provisioned;
select identity.provision_user('ext-chain-2', 'chain2@example.com', organization_id => :'org_b') is not null as provisioned;
select identity.provision_user('ext-chain-3', 'chain3@example.com') is not null as provisioned_without_org;
select identity.generate_signing_key('EdDSA') is not null as global_row;
-- Every row is linked: the first of a chain has no predecessor, every other
-- one names the previous row of the same chain and its hash.
select (identity.verify_audit_log())->'valid' as chained_and_valid;
select count(*) > 0 as rows, bool_and(row_hash is not null) as hashed,
       count(*) filter (where prev_id is null) = count(distinct coalesce(organization_id::text, '')) as one_start_per_chain
from identity.audit_log;
select (identity.verify_audit_log())->'valid' as valid, (identity.verify_audit_log())->'first_bad_id' as first_bad_id;
-- A transaction that rolls back leaves the chain as it was.
begin;
select identity.create_organization('Rolled back') is not null as created;
rollback;
select (identity.verify_audit_log())->'valid' as valid_after_rollback;
-- Tampering as a superuser, behind the append-only trigger: each case in
-- its own transaction, rolled back.
select min(id) as a_first, max(id) as a_last from identity.audit_log where organization_id = :'org_a' \gset
begin;
alter table identity.audit_log disable trigger audit_log_no_update_delete;
update identity.audit_log set details = details || '{"forged": true}' where id = :a_first;
select (identity.verify_audit_log())->'valid' as valid, (identity.verify_audit_log())->'first_bad_id' = to_jsonb(:a_first) as names_the_changed_row;
rollback;
begin;
alter table identity.audit_log disable trigger audit_log_no_update_delete;
-- Recomputing the changed row's own hash does not help: its successor's link breaks.
update identity.audit_log a set actor_kind = 'anon' where id = :a_first;
update identity.audit_log a set row_hash = identity.audit_log_hash(a) where id = :a_first;
select (identity.verify_audit_log())->'valid' as valid,
       (identity.verify_audit_log())->'first_bad_id' = to_jsonb((select min(id) from identity.audit_log where prev_id = :a_first)) as names_the_successor;
rollback;
begin;
alter table identity.audit_log disable trigger audit_log_no_update_delete;
delete from identity.audit_log where id = :a_first;
select (identity.verify_audit_log())->'valid' as valid,
       (identity.verify_audit_log())->'first_bad_id' = to_jsonb((select min(id) from identity.audit_log where prev_id = :a_first)) as names_the_row_after_the_gap;
rollback;
begin;
alter table identity.audit_log disable trigger audit_log_no_update_delete;
delete from identity.audit_log where id = :a_last;
select (identity.verify_audit_log())->'valid' as valid, (identity.verify_audit_log())->'first_bad_id' = to_jsonb(:a_last) as a_deleted_last_row_is_seen;
rollback;
select (identity.verify_audit_log())->'valid' as valid_again;
-- Only system verifies; the user level has no access at all.
set role authenticated;
select t.err($$select identity.verify_audit_log()$$) as user_verifies;
reset role;
select t.act(u.id) from identity.users u where u.email = 'chain1@example.com';
set role service_role;
select t.err($$select identity.verify_audit_log()$$) as admin_level_with_claims;
reset role;
select t.act(null);
