-- JWT benchmark fixtures (run after hook_setup.sql, which made 100,000 users
-- and bench.event(i)): 10,000 Supabase-shaped access tokens (~700 bytes)
-- signed by identity.sign_jwt, and the baseline: a verifier and a signer in
-- plain SQL with pgcrypto's hmac, in the style of pgjwt.
create extension pgcrypto;
create function bench.url_decode(data text) returns bytea language sql immutable as $$
  select decode(rpad(translate(data, '-_', '+/'), 4 * ((length(data) + 3) / 4), '='), 'base64')
$$;
create function bench.url_encode(data bytea) returns text language sql immutable as $$
  select translate(encode(data, 'base64'), E'+/=\n', '-_')
$$;
create function bench.sql_verify(token text, secret text) returns jsonb language sql stable as $$
  select case
    when bench.url_encode(hmac(split_part(token, '.', 1) || '.' || split_part(token, '.', 2), secret, 'sha256'))
         = split_part(token, '.', 3)
     and (convert_from(bench.url_decode(split_part(token, '.', 2)), 'utf8')::jsonb ->> 'exp')::bigint
         > extract(epoch from now())
    then convert_from(bench.url_decode(split_part(token, '.', 2)), 'utf8')::jsonb
  end
$$;
create function bench.sql_sign(payload jsonb, secret text) returns text language sql stable as $$
  with h as (select bench.url_encode(convert_to('{"alg":"HS256","typ":"JWT"}', 'utf8')) as h),
       p as (select bench.url_encode(convert_to(payload::text, 'utf8')) as p)
  select h.h || '.' || p.p || '.' || bench.url_encode(hmac(h.h || '.' || p.p, secret, 'sha256')) from h, p
$$;
-- Claims as Supabase Auth issues them (the hook's output), per user.
create table bench.claims as
  select i as id, (identity.custom_access_token_hook(bench.event(i)) -> 'claims') - 'exp' - 'iat' as claims
  from generate_series(1, 10000) i where i % 50 <> 0;
create table bench.tokens as select id, identity.sign_jwt(claims) as token from bench.claims;
-- The same claims with sub and session_id renamed (xsub, xsession_id: same
-- values, so nearly the same size): no session or user checks (sign_jwt
-- fills a jti into every token, so the jti check stays).
create table bench.tokens_stateless as
  select id, identity.sign_jwt((claims - 'sub' - 'session_id')
           || jsonb_build_object('xsub', claims->'sub', 'xsession_id', claims->'session_id')) as token
  from bench.claims;
-- The same 980 tokens, each 10 times, cycling through all of them before
-- any repeats: a backend serving requests sees a user's token again and
-- again while it is valid. 980 is under the 1,024 signatures a backend
-- remembers, so the calls after the first of each token are "repeat" calls.
create table bench.tokens_repeat as
  select t.id, t.token from bench.tokens t cross join generate_series(1, 10) g where t.id <= 1000 order by g, t.id;
-- Keys, so the one-row statements (a backend's first call, the pooled
-- backend's preamble) find their row by an index, not a scan of 10,000.
alter table bench.claims add primary key (id);
alter table bench.tokens add primary key (id);
analyze bench.claims, bench.tokens, bench.tokens_stateless, bench.tokens_repeat;
-- Both verifiers accept every token before they are timed.
do $$
begin
  if exists (select 1 from bench.tokens where bench.sql_verify(token, current_setting('bench.secret')) is null
                                           or identity.verify_jwt(token) is null) then
    raise exception 'a verifier refused a valid token';
  end if;
end $$;
-- Asymmetric: 2,000 tokens per algorithm, each signed by its own key; then
-- every key is retired (they keep verifying) so sign_jwt is HS256 again.
select identity.activate_signing_key(identity.generate_signing_key('ES256'));
create table bench.tokens_es256 as select id, identity.sign_jwt(claims) as token from bench.claims where id <= 2050;
select identity.activate_signing_key(identity.generate_signing_key('EdDSA'));
create table bench.tokens_eddsa as select id, identity.sign_jwt(claims) as token from bench.claims where id <= 2050;
select identity.activate_signing_key(identity.generate_signing_key('RS256'));
create table bench.tokens_rs256 as select id, identity.sign_jwt(claims) as token from bench.claims where id <= 2050;
select identity.retire_signing_key(kid) from identity.signing_keys where status = 'active';
analyze bench.tokens_es256, bench.tokens_eddsa, bench.tokens_rs256;
do $$
begin
  if exists (select 1 from bench.tokens_es256 where identity.verify_jwt(token) is null)
     or exists (select 1 from bench.tokens_eddsa where identity.verify_jwt(token) is null)
     or exists (select 1 from bench.tokens_rs256 where identity.verify_jwt(token) is null) then
    raise exception 'an asymmetric token did not verify';
  end if;
end $$;
