#!/usr/bin/env bash
# identity.authenticate with an external issuer's token (issue 17): RS256 and
# ES256 tokens of registered issuers, against our own JWTs (HS256 and ES256)
# in the same cluster and run. Each kind runs N calls in a server-side loop
# (a transaction each, so the pin ends every time, as for a pooled request),
# in interleaved rounds; the minimum per call over the rounds is printed
# with its ratio to our HS256 JWT.
# The external tokens are signed by keys made here (generate_signing_key)
# and carry another issuer's iss; that issuer is registered with the
# key's public JWK only, so they are verified through the external path.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/cluster.sh
cluster_start bench_external "${IDENTITY_BENCH_PORT:-28826}"
trap cluster_stop EXIT
N=${BENCH_CALLS:-2000}
ROUNDS=${BENCH_ROUNDS:-5}
psql -qX -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
create extension identity;
create schema bench;
create table bench.tokens (kind text primary key, token text);
-- One issuer per algorithm, each with its key's public JWK only, and a user
-- of its own (an issuer links only users of no other issuer).
select identity.provision_user('ext-bench-rs256', 'bench-rs256@example.com');
select identity.provision_user('ext-bench-es256', 'bench@example.com');
do $$
declare
    alg text;
    kid text;
    iss text;
begin
    foreach alg in array array['RS256', 'ES256'] loop
        kid := identity.generate_signing_key(alg);
        perform identity.activate_signing_key(kid);
        iss := 'https://' || lower(alg) || '.idp.example';
        perform identity.register_issuer(iss,
            jsonb_build_object('keys', jsonb_path_query_array(identity.jwks(), '$.keys[*] ? (@.kid == $k)',
                                                               jsonb_build_object('k', kid))),
            '{"audience": "authenticated", "match_external_id": true}');
        insert into bench.tokens values ('external_' || lower(alg),
            identity.sign_jwt(jsonb_build_object('iss', iss, 'sub', 'ext-bench-' || lower(alg)), '1 day'));
        if alg = 'ES256' then
            insert into bench.tokens values ('ours_es256',
                identity.issue_access_token((select id from identity.users where external_id = 'ext-bench-es256'), '1 day'));
        end if;
        perform identity.retire_signing_key(kid);
    end loop;
    insert into bench.tokens values ('ours_hs256',
        identity.issue_access_token((select id from identity.users where external_id = 'ext-bench-es256'), '1 day'));
end $$;
create procedure bench.loop(kind text, n int, inout us float8) language plpgsql as $$
declare
    t text := (select token from bench.tokens where bench.tokens.kind = loop.kind);
    started timestamptz;
    total float8 := 0;
begin
    for i in 1..n loop
        started := clock_timestamp();
        if identity.authenticate(t) is null then raise 'refused'; end if;
        total := total + extract(epoch from clock_timestamp() - started);
        commit;
    end loop;
    us := total * 1e6 / n;
end $$;
SQL
kinds=(ours_hs256 ours_es256 external_rs256 external_es256)
for k in "${kinds[@]}"; do psql -qAtX -c "call bench.loop('$k', 200, null)" >/dev/null; done  # warm-up
declare -A best
for r in $(seq "$ROUNDS"); do
    for k in "${kinds[@]}"; do
        us=$(psql -qAtX -c "call bench.loop('$k', $N, null)")
        best[$k]=$(python3 -c "import sys; a=[float(x) for x in sys.argv[1:] if x]; print(min(a))" "${best[$k]:-}" "$us")
    done
done
echo "authenticate per call, minimum of $ROUNDS interleaved rounds of $N (one backend, one transaction each):"
for k in "${kinds[@]}"; do
    python3 -c "import sys; k,v,b=sys.argv[1],float(sys.argv[2]),float(sys.argv[3]); print(f'  {k:16s} {v:8.1f} us  {v/b:5.2f}x our HS256 JWT')" "$k" "${best[$k]}" "${best[ours_hs256]}"
done
