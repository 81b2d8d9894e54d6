-- The organization's audit trail, newest first, as the signed-in admin sees
-- it under the policy org_admin of identity.audit_log. Filters (NULL: any):
-- $1 actor (a user id or an email), $2 action (exact, or a prefix such as
-- "user" for user.*), $3 target id; $4 keyset page: rows older than this
-- id; $5 page size. The actor's email, and a target user's, are shown
-- when the admin may see them.
select coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
        'id', a.id, 'at', a.at, 'actor_id', a.actor_id, 'actor_email', u.email,
        'actor_kind', a.actor_kind, 'action', a.action, 'target_type', a.target_type,
        'target_id', a.target_id, 'target_email', t.email, 'details', a.details)
        order by a.id desc), '[]')
    from (select * from identity.audit_log a
            where a.organization_id = identity.org_id()
              and ($1::text is null
                   or a.actor_id::text = $1
                   or a.actor_id in (select x.id from identity.users x where x.email = $1))
              and ($2::text is null or a.action = $2 or a.action like $2 || '.%')
              and ($3::text is null or a.target_id = $3)
              and ($4::bigint is null or a.id < $4)
            order by a.id desc
            limit $5) a
    left join identity.users u on u.id = a.actor_id
    left join identity.users t on a.target_type = 'user' and t.id::text = a.target_id
