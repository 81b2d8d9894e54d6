-- The issuers whose options.jwks_uri the background worker fetches now
-- (src/pg/jwks_fetch.rs): never fetched, or their last attempt older than
-- their jwks_refresh_seconds, or, when a token named an unknown kid ($1),
-- older than a minute (or the refresh interval, if shorter).
select i.issuer, i.options->>'jwks_uri'
from identity.issuers i
where i.options ? 'jwks_uri'
  and (greatest(i.jwks_fetched_at, i.jwks_failed_at) is null
       or greatest(i.jwks_fetched_at, i.jwks_failed_at)
          <= pg_catalog.now() - pg_catalog.make_interval(secs => case
               when $1 then least(60, coalesce((i.options->>'jwks_refresh_seconds')::int, 3600))
               else coalesce((i.options->>'jwks_refresh_seconds')::int, 3600) end))
order by i.issuer
