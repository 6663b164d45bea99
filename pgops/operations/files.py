"""pyinfra's `files.put`, `files.directory` and `files.file`, decided from one snapshot of
every managed path instead of three SSH round trips per file.

A no-op deploy spent most of its time there (about 0.12 s for each of some 20 files and
directories on every host). The snapshot (`PathStates`) is read once per host, for every
path these operations were called with, and trusted only while no operation has run a
command on any host since (pgops.operations.cache): after any change it is read again. A
path that does not match exactly goes to pyinfra's own operation, which reads its facts and
makes the change, so the snapshot can only ever skip work that pyinfra would have found
unnecessary too.
"""

from __future__ import annotations

import hashlib
from io import StringIO
from pathlib import Path

from pyinfra import host
from pyinfra.api import operation
from pyinfra.operations import files

from pgops.facts.files import PathState, PathStates
from pgops.operations.cache import valid_entries

_PATHS = "_pgops_managed_paths"
_SNAPSHOT = "_pgops_path_snapshot"


# -- decisions (pure) -------------------------------------------------------------------------
def _owner_mode_match(st: PathState, user: str | None, group: str | None, mode: str | int | None) -> bool:
    return ((not user or st.user == user) and (not group or st.group == group)
            and (mode is None or (str(mode).isdigit() and st.mode == int(str(mode)))))


def file_matches(st: PathState | None, sha1: str, user: str | None = None, group: str | None = None,
                 mode: str | int | None = None) -> bool:
    """A regular file with this content, and this owner and mode where they are asked for."""
    return (st is not None and st.kind == "file" and st.sha1 == sha1
            and _owner_mode_match(st, user, group, mode))


def directory_matches(st: PathState | None, user: str | None = None, group: str | None = None,
                      mode: str | int | None = None) -> bool:
    return st is not None and st.kind == "dir" and _owner_mode_match(st, user, group, mode)


def absent(st: PathState | None) -> bool:
    return st is not None and st.kind == "missing"


def sha1_of(src: str | StringIO) -> str:
    data = src.getvalue().encode() if isinstance(src, StringIO) else Path(src).read_bytes()
    return hashlib.sha1(data).hexdigest()


# -- the snapshot -----------------------------------------------------------------------------
def path_state(path: str) -> PathState | None:
    """`path` as the snapshot has it: read with every other path not in it yet, and again
    once any command has run."""
    states = valid_entries(_SNAPSHOT)
    if path not in states:
        wanted = getattr(host, _PATHS, set()) | {path}
        states.update(host.get_fact(PathStates, paths=tuple(sorted(wanted - set(states)))))
    return states.get(path)


def expect(path: str) -> None:
    """Called as the deploy is planned: every path this host's operations manage is in its
    first snapshot, whichever operation runs first."""
    if not hasattr(host, _PATHS):
        setattr(host, _PATHS, set())
    getattr(host, _PATHS).add(path)


# -- operations -------------------------------------------------------------------------------
@operation()
def _put(src: str | StringIO, dest: str, user: str | None = None, group: str | None = None,
         mode: str | None = None, create_remote_dir: bool = True):
    if file_matches(path_state(dest), sha1_of(src), user, group, mode):
        return
    yield from files.put._inner(src=src, dest=dest, user=user, group=group, mode=mode,
                                create_remote_dir=create_remote_dir)


@operation()
def _directory(path: str, user: str | None = None, group: str | None = None, mode: str | None = None,
               present: bool = True):
    st = path_state(path)
    if absent(st) if not present else directory_matches(st, user, group, mode):
        return
    yield from files.directory._inner(path=path, user=user, group=group, mode=mode, present=present)


@operation()
def _file_absent(path: str):
    if absent(path_state(path)):
        return
    yield from files.file._inner(path=path, present=False)


def put(*, dest: str, **kwargs):
    """`files.put` (src, dest, user, group, mode, create_remote_dir; and pyinfra's global
    arguments: name, _if, ...)."""
    expect(dest)
    return _put(dest=dest, **kwargs)


def directory(*, path: str, **kwargs):
    """`files.directory` (path, user, group, mode, present)."""
    expect(path)
    return _directory(path=path, **kwargs)


def file_absent(*, path: str, **kwargs):
    """`files.file(present=False)`: the path removed (a file or a link)."""
    expect(path)
    return _file_absent(path=path, **kwargs)
