"""Shared by the interop tests: a fresh database with the extension."""
import contextlib
import os

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
