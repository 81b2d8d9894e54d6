-- src/pg/spi.rs: audit
insert into identity.audit_log
    (actor_id, actor_kind, actor_role, organization_id, action, target_type, target_id, details)
    values ($1, $2, pg_catalog.session_user(), $3, $4, $5, $6, $7)
