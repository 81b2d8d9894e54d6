-- src/api/credentials.rs: insert
insert into identity.credentials (id, user_id, organization_id, provider, name, ciphertext, last4,
    is_system, credit_limit, created_by)
    values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) on conflict do nothing returning id
