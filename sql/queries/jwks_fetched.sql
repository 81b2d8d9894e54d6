-- A fetch of $1's jwks_uri ($2) that gave the valid set $3: stored (the
-- version moves only when the set changed), the error cleared. Nothing
-- when the issuer was removed or its jwks_uri changed meanwhile.
update identity.issuers
set jwks = $3,
    version = version + (jwks is distinct from $3)::int,
    updated_at = case when jwks is distinct from $3 then pg_catalog.now() else updated_at end,
    jwks_fetched_at = pg_catalog.now(),
    jwks_error = null
where issuer = $1 and options->>'jwks_uri' = $2
