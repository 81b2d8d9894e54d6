-- src/api/tokens.rs: rotate_api_token
select pg_catalog.jsonb_build_object('user_id', user_id, 'name', name, 'scopes', scopes,
    'lifetime', extract(epoch from expires_at - created_at), 'revoked', revoked_at is not null,
    'expired', expires_at <= pg_catalog.now())
    from identity.api_tokens where id = $1 for update
