-- src/api/tokens.rs: issue
insert into identity.api_tokens
    (user_id, kind, name, token_hash, display_prefix, last4, scopes, expires_at, rotated_from)
    values ($1, 'api', $2, $3, $4, $5, $6,
    pg_catalog.now() + pg_catalog.make_interval(secs => $7::float8), $8)
    returning id, expires_at
