-- The organization's service users, newest first, as the signed-in admin
-- sees them under the RLS policies of identity.users and identity.api_tokens
-- (another organization's rows are not visible at all). last_used_at is the
-- latest use of any of the user's API tokens.
select coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
        'id', u.id, 'email', u.email, 'status', u.status,
        'application_id', u.application_id, 'application_name', u.application_name,
        'description', u.description, 'created_by', u.created_by,
        'created_by_name', u.created_by_name, 'created_at', u.created_at,
        'last_used_at', t.last_used_at, 'live_tokens', coalesce(t.live, 0))
        order by u.created_at desc, u.id), '[]')
    from identity.users u
    left join lateral (
        select pg_catalog.max(k.last_used_at) as last_used_at,
               pg_catalog.count(*) filter (where k.revoked_at is null
                   and (k.expires_at is null or k.expires_at > pg_catalog.now())) as live
            from identity.api_tokens k where k.user_id = u.id) t on true
    where u.is_service_user and u.organization_id = identity.org_id()
