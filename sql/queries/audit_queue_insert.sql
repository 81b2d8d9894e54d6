-- src/pg/audit_queue.rs: the background writer inserts a batch of queued
-- audit records (a jsonb array of objects) in its own transaction.
insert into identity.audit_log
    (actor_id, actor_kind, actor_role, organization_id, action, target_type, target_id, details)
select (r->>'actor_id')::uuid, r->>'actor_kind', (r->>'actor_role')::name, (r->>'organization_id')::uuid,
       r->>'action', r->>'target_type', r->>'target_id', coalesce(r->'details', '{}')
from pg_catalog.jsonb_array_elements($1) r
