"""A system account, decided from its passwd line and the path snapshot (pyinfra's
`server.user` reads every user and their groups: 0.25 s on a no-op deploy)."""

from __future__ import annotations

from pyinfra.api import operation
from pyinfra.operations import server

from pgops.facts.system import PasswdEntry
from pgops.operations import cache, files


def user_matches(entry: dict[str, str] | None, home: str, shell: str) -> bool:
    return entry is not None and entry["home"] == home and entry["shell"] == shell


@operation()
def _system_user(user: str, home: str, shell: str):
    if (user_matches(cache.fact(PasswdEntry, user=user), home, shell)
            and files.directory_matches(files.path_state(home), user, user)):
        return  # as server.user would find it: the account, and its home owned by it
    yield from server.user._inner(user=user, system=True, home=home, shell=shell, create_home=False)


def system_user(*, user: str, home: str, shell: str, **kwargs):
    """`server.user(system=True, create_home=False)` with this home and shell; pyinfra's
    global arguments (name, ...) pass through."""
    files.expect(home)
    return _system_user(user=user, home=home, shell=shell, **kwargs)
