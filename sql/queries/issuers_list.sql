-- src/api/issuers.rs: list_issuers. What an operator needs to see of each
-- issuer; the webhook secret only as whether one is set.
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
order by i.issuer
