"""Shared test setup: lab tests run against one disposable lab (`test`) for the session."""

# pyinfra's CLI package (which pgops.settings.inventory uses to load inventories like pyinfra does)
# patches the process with gevent when first imported. Patch here, first, so threads and
# sockets in every test are patched consistently rather than halfway through the run.
from gevent import monkey

monkey.patch_all()

import os  # noqa: E402

import pytest  # noqa: E402


def pytest_collection_modifyitems(config, items):
    # Pure tests first: they fail fast, before the lab is booted.
    items.sort(key=lambda i: 0 if "tests/unit" in str(i.fspath) else 1)
    for item in items:
        if "tests/lab" in str(item.fspath):
            item.add_marker(pytest.mark.lab)


def pytest_configure(config):
    os.environ.setdefault("PGOPS_LAB", "test")


def pytest_terminal_summary(terminalreporter):
    """Seconds per test file (setup, call and teardown): where the CI budget goes."""
    per_file: dict[str, float] = {}
    for reports in terminalreporter.stats.values():
        for r in reports:
            if isinstance(r, pytest.TestReport):
                name = r.nodeid.split("::")[0]
                per_file[name] = per_file.get(name, 0.0) + r.duration
    shown = sorted(((s, n) for n, s in per_file.items() if s >= 1), reverse=True)
    if shown:
        terminalreporter.write_sep("=", "seconds per file")
        for s, name in shown:
            terminalreporter.write_line(f"{s:8.1f}  {name}")
