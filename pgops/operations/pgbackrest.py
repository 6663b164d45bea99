"""Operations for pgBackRest in repository-host mode: SSH keys and trust between each
database host's `postgres` and the repository host's `pgbackrest`, and stanzas."""

from __future__ import annotations

from io import StringIO

from pyinfra import host, logger
from pyinfra.api import FactBase, OperationError, operation
from pyinfra.facts.files import File, FileContents
from pyinfra.operations import files

from pgops.backup import backrest
from pgops.facts.pgbackrest import PgbackrestInfo
from pgops.operations import cache


@operation()
def legacy_config_moved_aside():
    """Debian ships /etc/pgbackrest.conf; once /etc/pgbackrest/pgbackrest.conf exists it is
    ignored, so move it aside rather than leave a second, misleading config."""
    if not host.get_fact(File, path=backrest.LEGACY_CONF):
        host.noop(f"{backrest.LEGACY_CONF} is not there")
        return
    yield f"mv {backrest.LEGACY_CONF} {backrest.LEGACY_CONF}.pgops-disabled"


@operation()
def ssh_key(user: str, home: str):
    """An ed25519 key pair for `user` (generated on the host; the private key never moves)."""
    key = f"{home}/.ssh/id_ed25519"
    if host.get_fact(File, path=f"{key}.pub", _sudo=True):
        host.noop(f"{user} has an SSH key")
        return
    yield (f"install -d -m 700 -o {user} -g {user} {home}/.ssh && "
           f"runuser -u {user} -- ssh-keygen -q -t ed25519 -N '' -C {user}@{host.name} -f {key}")


class SshHostKeys(FactBase):
    """Every public host key of a host: ssh learns all of them on connect (UpdateHostKeys),
    so known_hosts must hold all of them or ssh rewrites it and the next deploy differs."""

    def command(self):
        return "cat /etc/ssh/ssh_host_*_key.pub"

    def process(self, output):
        return [line.strip() for line in output if line.strip()]


def _peer_file(peer_name: str, path: str) -> str:
    peer = host.inventory.get_host(peer_name)
    lines = cache.fact(FileContents, on=peer, path=path, _sudo=True)
    if not lines:
        raise OperationError(
            f"{peer_name} has no {path} yet: deploy {peer_name} too (run without --limit, "
            f"or include it in --limit)"
        )
    return "\n".join(lines).strip()


@operation()
def trust(user: str, home: str, peers: list[tuple[str, str, list[str]]]):
    """Let each peer's `peer_user` run pgbackrest (and only pgbackrest) as `user` here, and
    know each peer's host key, so SSH with strict host key checking works both ways.

    + peers: (inventory host name, the peer user's home, names the peer is reached by)

    pgops owns `user`'s authorized_keys and known_hosts: other lines there are replaced.
    """
    keys, known, here = [], [], host.inventory.get_host(host.name)
    paths = (f"{home}/.ssh/authorized_keys", f"{home}/.ssh/known_hosts")
    # What every peer holds, and this host's two files, read at once (not one peer after
    # another: a repository host has a peer per database host).
    cache.read_at_once([
        *((p, cls, kw) for name, peer_home, _ in peers for p in [host.inventory.get_host(name)]
          for cls, kw in ((FileContents, {"path": f"{peer_home}/.ssh/id_ed25519.pub", "_sudo": True}),
                          (SshHostKeys, {}))),
        *((here, FileContents, {"path": path, "_sudo": True}) for path in paths)])
    for name, peer_home, names in peers:
        keys.append(backrest.authorized_key(_peer_file(name, f"{peer_home}/.ssh/id_ed25519.pub")))
        for key in cache.fact(SshHostKeys, on=host.inventory.get_host(name)) or []:
            known.append(backrest.known_host(names, key))
    header = "# Managed by pgops (pgBackRest trust): edits here are overwritten.\n"
    for path, lines in zip(paths, (keys, known), strict=True):
        content = header + "\n".join(sorted(lines)) + "\n"
        current = cache.fact(FileContents, path=path, _sudo=True)
        if current is not None and "\n".join(current).strip() == content.strip():
            continue
        yield from files.put._inner(src=StringIO(content), dest=path, user=user, group=user, mode="600")


@operation()
def stanza(stanza_name: str):
    """Create a stanza if the repository lacks it, then `check` it (archiving end to end).
    An existing, valid stanza is left alone. Call as the repository user."""
    info = host.get_fact(PgbackrestInfo, stanza=stanza_name) or []
    status = info[0]["status"] if info else {"code": 1, "message": "no info"}
    if status["code"] in (0, 2):  # 2: valid stanza without a backup yet
        host.noop(f"stanza {stanza_name} exists ({status['message']})")
        return
    logger.info(f"{host.print_prefix}creating stanza {stanza_name} ({status['message']})")
    yield (f"cd / && {backrest.command(stanza_name, 'stanza-create')} && "
           f"{backrest.command(stanza_name, 'check')}")
