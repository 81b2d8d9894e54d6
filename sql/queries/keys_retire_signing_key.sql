-- src/api/keys.rs: retire_signing_key
update identity.signing_keys set status = 'retired', retired_at = coalesce(retired_at, now()),
    expires_at = coalesce(expires_at, now() + make_interval(secs => $2::float8))
    where kid = $1 and status <> 'revoked' returning kid
