-- src/api/issuers.rs: who an issuer's subject is. No row: unknown;
-- user_id null: a tombstone; stale: last_seen_at is over a minute old.
select pg_catalog.jsonb_build_object(
    'user_id', d.user_id,
    'stale', d.last_seen_at is null or d.last_seen_at < pg_catalog.now() - interval '1 minute')
from identity.identities d
where d.issuer = $1 and d.subject = $2
