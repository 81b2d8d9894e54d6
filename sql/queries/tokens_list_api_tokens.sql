-- src/api/tokens.rs: list_api_tokens
select pg_catalog.jsonb_build_object('token_id', id, 'user_id', user_id, 'name', name, 'kind', kind,
    'display_prefix', display_prefix, 'last4', last4, 'scopes', scopes, 'expires_at', expires_at,
    'revoked_at', revoked_at, 'last_used_at', last_used_at, 'rotated_from', rotated_from,
    'created_at', created_at)
    from identity.api_tokens where $1::uuid is null or user_id = $1 order by created_at, id
