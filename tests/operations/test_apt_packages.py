"""pgops.operations.apt.packages: installed packages yield nothing, read from the cached
package list; a missing or pinned one goes to pyinfra's apt.packages."""

from __future__ import annotations

from pgops.operations import apt
from tests.operations.harness import make_host, run_operation

INSTALLED = {"postgresql-17": {"17.6-1"}, "postgresql-17-pgvector": {"0.8.0-1"}}


def test_installed_packages_are_a_no_op_and_the_list_is_read_once():
    host = make_host({"facts": {"DebPackages": INSTALLED}})
    reads = []
    plain = host.get_fact
    host.get_fact = lambda cls, **kw: reads.append(cls.__name__) or plain(cls, **kw)  # type: ignore[method-assign]
    for _ in range(2):
        out = run_operation(apt.packages, host, kwargs={"packages": list(INSTALLED)})
        assert out.commands == []
    assert reads == ["DebPackages"]


def test_a_missing_package_is_installed_by_pyinfras_operation():
    host = make_host({"facts": {"DebPackages": INSTALLED}})
    out = run_operation(apt.packages, host, kwargs={"packages": ["postgresql-17", "pgbouncer"]})
    assert len(out.raw) == 1
    assert "apt-get" in out.raw[0] and "install" in out.raw[0]
    assert "--no-install-recommends" in out.raw[0] and "pgbouncer" in out.raw[0]
    assert "postgresql-17 " not in out.raw[0] + " "


def test_missing_never_takes_a_pinned_version_as_installed():
    assert apt.missing(["postgresql-17=17.6-1", "postgresql-17"], INSTALLED) == ["postgresql-17=17.6-1"]
    assert apt.missing(["a"], None) == ["a"]
