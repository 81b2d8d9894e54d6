# Shared by the bench/*.sh scripts.
# exec_ms QUERY [PREAMBLE]: the server-side execution time of QUERY in ms
# (EXPLAIN ANALYZE, timing off), after the optional PREAMBLE statements in
# the same session.
exec_ms() {
    psql -qAtX -v ON_ERROR_STOP=1 <<SQL | python3 -c 'import json,sys; print(json.loads(sys.stdin.read())[0]["Execution Time"])'
${2:-}
explain (analyze, timing off, summary on, format json) $1;
SQL
}
