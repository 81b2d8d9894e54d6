-- A failed fetch of $1's jwks_uri ($2): the set in use stays (the last good
-- one); when and why ($3) are kept for list_issuers.
update identity.issuers
set jwks_failed_at = pg_catalog.now(),
    jwks_error = pg_catalog.left($3, 500)
where issuer = $1 and options->>'jwks_uri' = $2
