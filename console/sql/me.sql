-- The signed-in caller (console/src/db.rs): their own row of identity.users,
-- visible to them under the policy self_or_org_admin, and their organization
-- (policy member_reads_own_org). Runs as the caller, after
-- identity.authenticate pinned their claims.
select pg_catalog.jsonb_build_object(
        'email', u.email, 'user_role', u.user_role,
        'organization_id', u.organization_id,
        'organization_name', o.name)
    from identity.users u
    left join identity.organizations o on o.id = u.organization_id
    where u.id = identity.uid()
