-- The organization's AI-service credentials, as the signed-in admin sees
-- them under the policy self_or_org_admin of identity.credentials: the
-- columns the user level may read (never the ciphertext), the owner's email,
-- and the number of recorded uses.
select coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
        'id', c.id, 'owner_email', u.email, 'provider', c.provider, 'name', c.name,
        'last4', c.last4, 'is_default', c.is_default, 'is_system', c.is_system,
        'enabled', c.enabled, 'credit_limit', c.credit_limit,
        'usage_total', c.usage_total, 'exhausted_at', c.exhausted_at,
        'calls', (select pg_catalog.count(*) from identity.credential_usage x
                     where x.credential_id = c.id))
        order by u.email, c.provider, c.name), '[]')
    from identity.credentials c
    left join identity.users u on u.id = c.user_id
    where c.organization_id = identity.org_id()
