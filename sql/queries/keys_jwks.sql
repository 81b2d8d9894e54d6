-- src/api/keys.rs: jwks
select jsonb_build_object('keys', coalesce(jsonb_agg(public_jwk order by created_at, kid), '[]'))
    from identity.signing_keys
    where status in ('active', 'next') or (status = 'retired' and (expires_at is null or expires_at > now()))
