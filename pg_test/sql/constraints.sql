\i pg_test/fixtures.sql
-- The database itself enforces the data model's rules.
insert into identity.organizations (id, name) values
  ('00000000-0000-0000-0000-00000000000a', 'Acme');
insert into identity.users (id, email, organization_id, external_id) values
  ('00000000-0000-0000-0000-000000000001', 'Ada@Example.com', '00000000-0000-0000-0000-00000000000a', 'clerk_1');
-- Emails are unique regardless of case; external ids are unique.
select t.err($$insert into identity.users (email) values ('ada@example.COM')$$);
select t.err($$insert into identity.users (email, external_id) values ('b@example.com', 'clerk_1')$$);
-- Enumerated columns and shapes.
select t.err($$insert into identity.users (email, user_role) values ('c@example.com', 'root')$$);
select t.err($$insert into identity.users (email, status) values ('c@example.com', 'banned')$$);
select t.err($$insert into identity.users (email) values ('not-an-email')$$);
select t.err($$insert into identity.users (email, is_service_user) values ('svc@example.com', true)$$);
select t.err($$insert into identity.users (email, metadata) values ('c@example.com', '[1]')$$);
-- One default credential per user.
insert into identity.credentials (user_id, organization_id, provider, name, ciphertext, last4, is_default)
values ('00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-00000000000a', 'openrouter', 'main', '\x00', 'abcd', true);
select t.err($$insert into identity.credentials (user_id, provider, name, ciphertext, last4, is_default)
  values ('00000000-0000-0000-0000-000000000001', 'openrouter', 'second', '\x00', 'efgh', true)$$);
insert into identity.credentials (user_id, provider, name, ciphertext, last4, is_default)
  values ('00000000-0000-0000-0000-000000000001', 'openrouter', 'second', '\x00', 'efgh', false);
-- Only one active signing key.
insert into identity.signing_keys (kid, alg, public_jwk, private_key_ciphertext, status)
values ('k1', 'ES256', '{}', '\x00', 'active');
select t.err($$insert into identity.signing_keys (kid, alg, public_jwk, private_key_ciphertext, status)
  values ('k2', 'ES256', '{}', '\x00', 'active')$$);
select t.err($$insert into identity.signing_keys (kid, alg, public_jwk, private_key_ciphertext)
  values ('k3', 'none', '{}', '\x00')$$);
-- Token hashes are 32 bytes and unique.
select t.err($$insert into identity.api_tokens (user_id, name, token_hash, display_prefix, last4)
  values ('00000000-0000-0000-0000-000000000001', 't', '\x0102', 'idt_abcd', 'wxyz')$$);
insert into identity.api_tokens (user_id, name, token_hash, display_prefix, last4)
  values ('00000000-0000-0000-0000-000000000001', 't', sha256('x'), 'idt_abcd', 'wxyz');
select t.err($$insert into identity.api_tokens (user_id, name, token_hash, display_prefix, last4)
  values ('00000000-0000-0000-0000-000000000001', 't2', sha256('x'), 'idt_abcd', 'wxyz')$$);
-- An organization with users cannot be deleted.
-- (23503 on 15, 23001 restrict_violation on 18: an integrity violation.)
select left(t.state($$delete from identity.organizations where name = 'Acme'$$), 2) as integrity_violation_class;
-- Deleting a user removes tokens and credentials; the audit trail stays.
insert into identity.audit_log (actor_kind, action, target_type, target_id)
values ('system', 'user.test', 'user', '00000000-0000-0000-0000-000000000001');
delete from identity.users where id = '00000000-0000-0000-0000-000000000001';
select (select count(*) from identity.api_tokens) as tokens,
       (select count(*) from identity.credentials) as credentials,
       (select count(*) from identity.audit_log where action = 'user.test') as audit_rows;
