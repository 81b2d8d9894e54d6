"""Shared by the interop tests: a fresh database with the extension."""
import contextlib
import os
import threading

import psycopg


def server(dbname):
    return dict(host=os.environ["PGHOST"], port=os.environ["PGPORT"], user="postgres", dbname=dbname)


@contextlib.contextmanager
def fresh_database(dbname, *session_sql):
    """An autocommit connection to a new database `dbname` (dropped first if
    left over) in which `create extension identity` ran after `session_sql`.
    The database is dropped afterwards, so no test leaves objects that keep
    another test from dropping the cluster-wide roles."""
    with psycopg.connect(**server("postgres"), autocommit=True) as c:
        c.execute(f"drop database if exists {dbname}")
        c.execute(f"create database {dbname}")
    with psycopg.connect(**server(dbname), autocommit=True) as c:
        for sql in session_sql:
            c.execute(sql)
        c.execute("create extension identity")
        yield c
    with psycopg.connect(**server("postgres"), autocommit=True) as c:
        c.execute(f"drop database if exists {dbname} with (force)")


def run_concurrently(n, fn):
    """Runs fn(0) .. fn(n-1) in n threads released together by a barrier;
    returns (results by index, exceptions raised)."""
    barrier = threading.Barrier(n)
    results, errors = [None] * n, []

    def worker(i):
        try:
            barrier.wait()
            results[i] = fn(i)
        except Exception as e:  # noqa: BLE001 - asserted by the caller
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


# Supabase Auth's minimum claims schema (required fields and their JSON types).
CLAIMS_SCHEMA = {
    "type": "object",
    "required": ["aud", "exp", "iat", "sub", "email", "phone", "role", "aal", "session_id", "is_anonymous"],
    "properties": {
        "aud": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "exp": {"type": "integer"}, "iat": {"type": "integer"}, "nbf": {"type": "integer"},
        "iss": {"type": "string"}, "jti": {"type": "string"}, "sub": {"type": "string"},
        "email": {"type": "string"}, "phone": {"type": "string"}, "role": {"type": "string"},
        "aal": {"type": "string", "enum": ["aal1", "aal2", "aal3"]},
        "session_id": {"type": "string"}, "is_anonymous": {"type": "boolean"},
        "app_metadata": {"type": "object"}, "user_metadata": {"type": "object"},
        "amr": {"type": "array", "items": {"oneOf": [
            {"type": "string"},
            {"type": "object", "required": ["method"],
             "properties": {"method": {"type": "string"}, "timestamp": {"type": "integer"}}}]}},
        # Ours:
        "is_service_user": {"type": "boolean"},
        "user_role": {"type": "string", "enum": ["admin", "user", "system"]},
        "organization_id": {"type": ["string", "null"]},
        "application_id": {"type": ["string", "null"]},
    },
}
OK_SCHEMA = {"type": "object", "required": ["claims"], "additionalProperties": False,
             "properties": {"claims": CLAIMS_SCHEMA}}
ERR_SCHEMA = {"type": "object", "required": ["error"], "additionalProperties": False,
              "properties": {"error": {"type": "object", "required": ["http_code", "message"],
                                       "properties": {"http_code": {"type": "integer"},
                                                      "message": {"type": "string"}}}}}
