-- src/api/users.rs: provision_user, and an issuer's provisioning ($7: the
-- issuer whose subject the external_id $3 is; NULL for provision_user's).
insert into identity.users as u (id, email, external_id, first_name, last_name, organization_id, external_issuer)
    values (coalesce($1, gen_random_uuid()), $2, $3, $4, $5, $6, $7) on conflict do nothing returning
