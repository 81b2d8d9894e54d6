-- src/api/issuers.rs: list_issuers (every issuer: $1 NULL) and the answer
-- of register_issuer / set_issuer_jwks (issuer $1). What an operator needs
-- to see of each; the webhook secret only as whether one is set.
select pg_catalog.jsonb_build_object(
    'issuer', i.issuer,
    'options', i.options,
    'kids', (select coalesce(pg_catalog.jsonb_agg(k->'kid') filter (where k ? 'kid'), '[]')
             from pg_catalog.jsonb_array_elements(i.jwks->'keys') k),
    'key_count', pg_catalog.jsonb_array_length(i.jwks->'keys'),
    'jwks_uri', i.options->>'jwks_uri',
    'jwks_fetched_at', i.jwks_fetched_at,
    'jwks_failed_at', i.jwks_failed_at,
    'jwks_error', i.jwks_error,
    'webhook_secret', i.webhook_secret_ciphertext is not null,
    'identities', (select pg_catalog.count(*) from identity.identities d
                   where d.issuer = i.issuer and d.user_id is not null),
    'version', i.version,
    'created_at', i.created_at,
    'updated_at', i.updated_at)
from identity.issuers i
where $1::text is null or i.issuer = $1
order by i.issuer
