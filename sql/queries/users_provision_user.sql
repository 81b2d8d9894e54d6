-- src/api/users.rs: provision_user
insert into identity.users as u (id, email, external_id, first_name, last_name, organization_id)
    values (coalesce($1, gen_random_uuid()), $2, $3, $4, $5, $6) on conflict do nothing returning
