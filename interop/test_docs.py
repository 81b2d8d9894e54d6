"""The README cannot drift from the code: its function reference names every
function of schema identity with its argument types, and nothing else; its
settings table names every identity.* setting, and nothing else; every
function has a comment (\\df+). Run against a fresh install."""
import pathlib
import re

import pytest

from conftest import fresh_database

README = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()
GUCS_RS = (pathlib.Path(__file__).resolve().parent.parent / "src/pg/gucs.rs").read_text()
ALIASES = {"int": "integer", "int4": "integer", "int8": "bigint", "bool": "boolean",
           "timestamptz": "timestamp with time zone", "varchar": "character varying"}


def section(title):
    start = README.index(f"\n## {title}")
    end = README.find("\n## ", start + 1)
    return README[start:end if end != -1 else None]


def arg_type(arg):
    arg = re.split(r"\s+default\s+", arg.strip(), flags=re.I)[0].strip()
    words = arg.split()
    t = " ".join(words[1:]) if len(words) > 1 else words[0]
    return ALIASES.get(t, t)


def documented_functions():
    found = set()
    for line in section("Function reference").splitlines():
        if not line.startswith("| `identity."):
            continue
        first_cell = line.split(" | ")[0]
        for name, args in re.findall(r"`identity\.\"?(\w+)\"?\(([^`]*)\)`", first_cell):
            types = tuple(arg_type(a) for a in args.split(",")) if args.strip() else ()
            found.add((name, types))
    return found


def documented_settings():
    return set(re.findall(r"^\| `(identity\.\w+)` \|", section("Settings"), flags=re.M))


@pytest.fixture(scope="module")
def db():
    with fresh_database("docs_drift") as c:
        yield c


def test_readme_function_reference_names_every_function_with_its_argument_types(db):
    catalog = {(name, tuple(t for t in types.split(", ") if t)) for name, types in db.execute(
        "select p.proname, pg_catalog.oidvectortypes(p.proargtypes) from pg_catalog.pg_proc p "
        "where p.pronamespace = 'identity'::regnamespace").fetchall()}
    docs = documented_functions()
    assert sorted(catalog - docs) == [], "in the catalog, not in the README"
    assert sorted(docs - catalog) == [], "in the README, not in the catalog"


def test_readme_settings_table_names_every_setting(db):
    shown = {r[0] for r in db.execute("select name from pg_catalog.pg_settings where name like 'identity.%'")}
    # The secrets are GUC_NO_SHOW_ALL (absent from pg_settings even for a
    # superuser): the names registered in src/pg/gucs.rs count too.
    registered = set(re.findall(r'c"(identity\.\w+)"', GUCS_RS))
    code = shown | registered
    docs = documented_settings()
    assert sorted(code - docs) == [], "in the code, not in the README"
    assert sorted(docs - code) == [], "in the README, not in the code"
    for name in docs:  # each documented one exists in the server
        db.execute(f"select pg_catalog.current_setting('{name}', false)")


def test_every_function_has_a_comment(db):
    missing = [r[0] for r in db.execute(
        "select p.oid::regprocedure::text from pg_catalog.pg_proc p "
        "where p.pronamespace = 'identity'::regnamespace "
        "and coalesce(pg_catalog.obj_description(p.oid, 'pg_proc'), '') = ''")]
    assert missing == []


def test_the_drift_check_sees_a_missing_or_extra_name():
    # The parser reads what the README says: a row it can read, and one it
    # must not take for a function.
    assert ("verify_jwt", ("text", "text")) in documented_functions()
    assert ("revoke_jwt", ("text", "timestamp with time zone")) in documented_functions()
    assert "identity.jwt_secret" in documented_settings()


def test_readme_console_settings_are_the_consoles():
    # The console's settings table (README "Admin console") names exactly the
    # environment variables console/src/main.rs reads.
    main = (pathlib.Path(__file__).resolve().parent.parent / "console" / "src" / "main.rs").read_text()
    code = set(re.findall(r'"(IDENTITY_CONSOLE_[A-Z_]+)"', main))
    docs = set(re.findall(r"^\| `(IDENTITY_CONSOLE_\w+)` \|", section("Admin console"), flags=re.M))
    assert code and sorted(code - docs) == [], "read by the console, not in the README"
    assert sorted(docs - code) == [], "in the README, not read by the console"
