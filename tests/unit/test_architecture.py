"""The layout's rules, checked on the source: no import cycle (imports inside functions
count), data flows one way (nothing below the CLI imports it; facts, operations, the server
and settings never reach up into deploys, backups at run time, status or the scheduler)."""

from __future__ import annotations

import ast
from pathlib import Path

from pgops import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "pgops"


def _module(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """pgops modules a file imports, anywhere in it: `from pgops.x import y` is pgops.x.y
    where y is a module (as import-linter counts it), else pgops.x."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = {f"{node.module}.{a.name}" for a in node.names} & modules
            out |= subs if len(subs) == len(node.names) else subs | {node.module}
    return out & modules


def graph() -> dict[str, set[str]]:
    files = {_module(p): p for p in PACKAGE.rglob("*.py")}
    return {m: _imports(p, set(files)) - {m} for m, p in files.items()}


def _cycle(g: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(g[m]):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(g):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_import_cycle():
    cycle = _cycle(graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_the_cycle_check_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


LOWER = ("pgops.settings", "pgops.server", "pgops.facts", "pgops.operations", "pgops.errors",
         "pgops.backup.rules", "pgops.backup.backrest", "pgops.backup.timers", "pgops.pki",
         "pgops.backup.roles", "pgops.ha.topology", "pgops.ha.patroni", "pgops.ha.etcd",
         "pgops.ha.join")
UPPER = ("pgops.cli", "pgops.deploys", "pgops.status", "pgops.schedule", "pgops.remote",
         "pgops.backup.repository", "pgops.backup.restore", "pgops.backup.drill",
         "pgops.backup.health", "pgops.lab", "pgops.ha.status", "pgops.tenant.restore")


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_data_flows_one_way():
    wrong = sorted(f"{m} imports {n}" for m, deps in graph().items() for n in deps
                   if (_under(m, LOWER) and _under(n, UPPER))
                   or (not _under(m, ("pgops.cli", "pgops.__main__")) and _under(n, ("pgops.cli",))))
    assert wrong == []


def test_the_repository_job_and_rules_import_only_the_standard_library():
    import sys

    for name in ("repo_job.py", "rules.py"):
        tree = ast.parse((PACKAGE / "backup" / name).read_text())
        tops = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        tops |= {n.module.split(".")[0] for n in ast.walk(tree)
                 if isinstance(n, ast.ImportFrom) and n.module and n.level == 0 and n.module != "__future__"}
        # repo_job imports rules as `pgops.backup.rules` inside pgops, as `rules` on the host.
        assert tops - set(sys.stdlib_module_names) <= {"pgops", "rules"}, (name, tops)
