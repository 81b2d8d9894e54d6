-- src/api/users.rs: create_service_user
insert into identity.users (email, organization_id, is_service_user, application_id, application_name,
    description, created_by, created_by_name)
    values ($1, $2, true, $3, $4, $5, $6, $7) on conflict do nothing returning id
