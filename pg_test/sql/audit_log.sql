\i pg_test/fixtures.sql
-- identity.audit_log is append-only for every role, superusers included.
insert into identity.audit_log (actor_kind, action, target_type, target_id)
values ('system', 'test.event', 'thing', '42');
select actor_kind, actor_role, action, target_type, target_id, details
from identity.audit_log where action = 'test.event';
select t.err('update identity.audit_log set action = ''rewritten''');
select t.err('delete from identity.audit_log');
select t.err('truncate identity.audit_log');
select count(*) as rows_still_there from identity.audit_log where action = 'test.event';
-- Only known actor kinds.
select t.err('insert into identity.audit_log (actor_kind, action) values (''root'', ''x'')');
-- grant_access in setup wrote its audit rows.
select action, target_type, target_id, details->>'level' as level
from identity.audit_log where action = 'access.granted' order by id;
