-- src/pg/spi.rs: event
with e as (insert into identity.events (type, user_id, organization_id, payload)
    values ($1, $2, $3, $4) returning id, type)
    select pg_catalog.pg_notify('identity_events',
    pg_catalog.jsonb_build_object('id', e.id, 'type', e.type)::text) from e
