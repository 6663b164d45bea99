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
