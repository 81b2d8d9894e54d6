-- src/api/users.rs: update_user
update identity.users u set
    first_name = case when $2 ? 'first_name' then $2->>'first_name' else u.first_name end,
    last_name = case when $2 ? 'last_name' then $2->>'last_name' else u.last_name end,
    metadata = case when $2 ? 'metadata' then $2->'metadata' else u.metadata end,
    email = case when $2 ? 'email' then $2->>'email' else u.email end,
    user_role = case when $2 ? 'user_role' then $2->>'user_role' else u.user_role end,
    status = case when $2 ? 'status' then $2->>'status' else u.status end,
    status_reason = case when $2 ? 'status_reason' then $2->>'status_reason'
    when $2->>'status' = 'active' then null else u.status_reason end,
    application_id = case when $2 ? 'application_id' then ($2->>'application_id')::uuid else u.application_id end,
    application_name = case when $2 ? 'application_name' then $2->>'application_name' else u.application_name end,
    description = case when $2 ? 'description' then $2->>'description' else u.description end,
    is_service_user = case when $2 ? 'is_service_user' then ($2->>'is_service_user')::boolean else u.is_service_user end,
    organization_id = case when $2 ? 'organization_id' then ($2->>'organization_id')::uuid else u.organization_id end,
    external_id = case when $2 ? 'external_id' then $2->>'external_id' else u.external_id end,
    -- A new external_id is no issuer's (as provision_user's is not).
    external_issuer = case when $2 ? 'external_id' and ($2->>'external_id') is distinct from u.external_id
    then null else u.external_issuer end,
    tokens_valid_after = case
    when $2 ? 'status' and $2->>'status' <> 'active' and u.status = 'active' then now()
    when $2 ? 'user_role' and $2->>'user_role' is distinct from u.user_role then now()
    when $2 ? 'organization_id' and ($2->>'organization_id')::uuid is distinct from u.organization_id then now()
    when $2 ? 'is_service_user' and ($2->>'is_service_user')::boolean is distinct from u.is_service_user then now()
    else u.tokens_valid_after end,
    updated_at = now()
    -- Never a user whose deletion was deferred (its tombstone committed).
    where u.id = $1 and not exists (select from identity.deleted_users d where d.id = u.id) returning
