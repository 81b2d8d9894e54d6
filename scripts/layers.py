#!/usr/bin/env python3
"""Checks the layering of src/ (README "Architecture"): every module's
references to other modules of this crate (`crate::pg::spi`, `use
crate::store::{cache, tables}`, `super::x`) point to its own layer or a lower
one (core < pg < store < api), and the references form no circle. Prints
each offence and exits 1; `pg_sys` (Postgres FFI) may be named only under
src/pg; prints "layers: ok (N modules, M edges)" otherwise.
The admin console (console/) sits outside these layers and speaks only
SQL: it may depend on neither the extension nor its core, and its code may
change roles only with SET LOCAL ROLE (never SET ROLE, RESET ROLE or SET
SESSION AUTHORIZATION, which would outlive the request's transaction).
Run by scripts/test.sh."""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent / "src"
LAYER = {"core": 0, "pg": 1, "store": 2, "api": 3}


def module_of(path):
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "mod":
        parts = parts[:-1]
    return "::".join(parts) or "lib"


def references(text, me):
    refs = set()
    text = re.sub(r"//.*", "", text)  # comments name modules too; only code counts
    for m in re.finditer(r"crate::(core|pg|store|api)(?:::\{([^}]*)\}|::(\w+))?", text):
        top, group, single = m.groups()
        if top == "core":
            refs.add("core")
        elif group is not None:
            for item in group.split(","):
                name = item.strip().split("::")[0].split(" ")[0]
                if name and name != "self":
                    refs.add(f"{top}::{name}")
        elif single:
            refs.add(f"{top}::{single}")
    parent = me.rsplit("::", 1)[0] if "::" in me else None
    for m in re.finditer(r"\bsuper::(\w+)", text):
        if parent:
            refs.add(f"{parent}::{m.group(1)}")
    refs.discard(me)
    return refs


def main():
    files = {module_of(p): p for p in ROOT.rglob("*.rs")}
    graph = {}
    for mod, path in files.items():
        graph[mod] = {r for r in references(path.read_text(), mod) if r in files or r == "core"}
    errors = []
    for mod, refs in graph.items():
        top = mod.split("::")[0]
        if top not in LAYER:
            continue
        for r in refs:
            rt = r.split("::")[0]
            if LAYER[rt] > LAYER[top]:
                errors.append(f"{mod} -> {r}: an arrow from a lower layer to a higher one")
    # Circles (depth-first search; each reported once by its members).
    state, stack, seen_cycles = {}, [], set()

    def visit(n):
        state[n] = 1
        stack.append(n)
        for r in sorted(graph.get(n, ())):
            if state.get(r) == 1:
                cycle = stack[stack.index(r):] + [r]
                key = frozenset(cycle)
                if key not in seen_cycles:
                    seen_cycles.add(key)
                    errors.append("import circle: " + " -> ".join(cycle))
            elif r in graph and not state.get(r):
                visit(r)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if not state.get(n):
            visit(n)
    # Postgres FFI lives in src/pg only (README "Architecture").
    for mod, path in files.items():
        if mod.split("::")[0] != "pg":
            code = re.sub(r"//.*", "", path.read_text())
            if re.search(r"\bpg_sys\b", code):
                errors.append(f"{mod}: names pg_sys outside src/pg")
    errors += console_offences()
    for e in errors:
        print(e)
    edges = sum(len(v) for v in graph.values())
    if errors:
        print(f"layers: {len(errors)} offences")
        return 1
    print(f"layers: ok ({len(graph)} modules, {edges} edges)")
    return 0


def console_offences():
    console = ROOT.parent / "console"
    if not console.exists():
        return []
    errors = []
    manifest = (console / "Cargo.toml").read_text()
    for crate in ("identity", "identity-core"):
        if re.search(rf'^\s*{re.escape(crate)}\s*=', manifest, re.M):
            errors.append(f"console depends on {crate}: it must speak SQL only")
    for path in list(console.rglob("*.rs")) + list(console.rglob("*.sql")):
        if "node_modules" in path.parts or "demo" in path.parts:
            continue
        code = re.sub(r"(//|--).*", "", path.read_text()).lower()
        for bad in (r"\bset\s+role\b", r"\breset\s+role\b", r"\bset\s+session\b", r"\bsecurity\s+definer\b"):
            if re.search(bad, code):
                errors.append(f"{path.relative_to(ROOT.parent)}: {bad} (the console acts only as its caller, per transaction)")
    return errors


if __name__ == "__main__":
    sys.exit(main())
