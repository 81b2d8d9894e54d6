-- One service user's API tokens through identity.list_api_tokens (which
-- checks that the caller may see them), newest first, each with its state:
-- revoked, expired (including a rotated token past its grace), grace (rotated,
-- still accepted until it expires) or live.
with t as (select t from identity.list_api_tokens($1) t)
select coalesce(pg_catalog.jsonb_agg(t.t || pg_catalog.jsonb_build_object('state',
        case when t.t ->> 'revoked_at' is not null then 'revoked'
             when (t.t ->> 'expires_at')::timestamptz <= pg_catalog.now() then 'expired'
             when exists (select from t n where n.t ->> 'rotated_from' = t.t ->> 'token_id') then 'grace'
             else 'live' end)
        order by t.t ->> 'created_at' desc, t.t ->> 'token_id'), '[]')
    from t
