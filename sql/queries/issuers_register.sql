-- src/api/issuers.rs: register_issuer. A new issuer, or an existing one's
-- keys, options and webhook secret replaced (its identities stay); the
-- version moves so every backend re-reads it. Returns whether it was new.
insert into identity.issuers as i (issuer, jwks, options, webhook_secret_ciphertext)
    values ($1, $2, $3, $4)
on conflict (issuer) do update
    set jwks = excluded.jwks,
        options = excluded.options,
        webhook_secret_ciphertext = excluded.webhook_secret_ciphertext,
        version = i.version + 1,
        jwks_fetched_at = null,
        jwks_failed_at = null,
        jwks_error = null,
        updated_at = pg_catalog.now()
returning (xmax = 0)
