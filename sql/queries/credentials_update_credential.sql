-- src/api/credentials.rs: update_credential
update identity.credentials c set
    name = case when $2 ? 'name' then $2->>'name' else c.name end,
    credit_limit = case when $2 ? 'credit_limit' then ($2->>'credit_limit')::numeric else c.credit_limit end,
    exhausted_at = case when $2 ? 'credit_limit' then null else c.exhausted_at end,
    ciphertext = coalesce($3, c.ciphertext),
    last4 = coalesce($4, c.last4),
    updated_at = now()
    where c.id = $1 and not exists (select 1 from identity.credentials d
    where d.user_id = c.user_id and d.provider = c.provider and d.name = $2->>'name' and d.id <> c.id)
    returning true
