-- src/api/tokens.rs: rotate_api_token
update identity.api_tokens set
    revoked_at = case when $2 = 0 then pg_catalog.now() else revoked_at end,
    expires_at = case when $2 = 0 then expires_at
    else least(coalesce(expires_at, 'infinity'), pg_catalog.now() + pg_catalog.make_interval(secs => $2::float8)) end
    where id = $1
