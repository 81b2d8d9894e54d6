-- Seconds until the next scheduled fetch of any issuer with a jwks_uri
-- (NULL: none has one): the background worker stays only while one is near.
select pg_catalog.min(pg_catalog.date_part('epoch',
         greatest(i.jwks_fetched_at, i.jwks_failed_at)
         + pg_catalog.make_interval(secs => coalesce((i.options->>'jwks_refresh_seconds')::int, 3600))
         - pg_catalog.now()))::float8
from identity.issuers i
where i.options ? 'jwks_uri'
