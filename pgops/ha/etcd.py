"""etcd's configuration for one member of the consensus store Patroni clusters share (pure).

Debian's etcd.service reads /etc/default/etcd (ETCD_* variables). pgops gives the member its
own data directory, so the single-node store the package starts at install is never joined
to anything, and TLS with client certificates on both the peer and the client side.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from pgops.settings.ha import ETCD_CLIENT_PORT, ETCD_PEER_PORT

ENV_FILE = "/etc/default/etcd"
DATA_DIR = "/var/lib/etcd/pgops"
#: Where the package's own single-node store lives (removed once pgops's member runs).
PACKAGE_DATA_DIR = "/var/lib/etcd/default"
TLS_DIR = "/etc/etcd/pgops-tls"
SERVICE = "etcd"


def token(members: Mapping[str, str]) -> str:
    """The cluster token: members of another store with other peers never join this one."""
    peers = ",".join(f"{n}={a}" for n, a in sorted(members.items()))
    return "pgops-" + hashlib.sha256(peers.encode()).hexdigest()[:12]


def render(member: str, members: Mapping[str, str]) -> str:
    """/etc/default/etcd for `member`; `members` maps every member's name to its address.

    The initial-cluster lines only matter for a member's first start (an empty data
    directory): afterwards etcd reads its membership from its data.
    """
    me = members[member]
    ca, cert, key = f"{TLS_DIR}/ca.crt", f"{TLS_DIR}/host.crt", f"{TLS_DIR}/host.key"
    env = {
        "ETCD_NAME": member,
        "ETCD_DATA_DIR": DATA_DIR,
        "ETCD_LISTEN_PEER_URLS": f"https://{me}:{ETCD_PEER_PORT}",
        "ETCD_LISTEN_CLIENT_URLS": f"https://{me}:{ETCD_CLIENT_PORT},https://127.0.0.1:{ETCD_CLIENT_PORT}",
        "ETCD_INITIAL_ADVERTISE_PEER_URLS": f"https://{me}:{ETCD_PEER_PORT}",
        "ETCD_ADVERTISE_CLIENT_URLS": f"https://{me}:{ETCD_CLIENT_PORT}",
        "ETCD_INITIAL_CLUSTER": ",".join(f"{n}=https://{a}:{ETCD_PEER_PORT}"
                                         for n, a in members.items()),
        "ETCD_INITIAL_CLUSTER_STATE": "new",
        "ETCD_INITIAL_CLUSTER_TOKEN": token(members),
        "ETCD_CERT_FILE": cert, "ETCD_KEY_FILE": key, "ETCD_TRUSTED_CA_FILE": ca,
        "ETCD_CLIENT_CERT_AUTH": "true",
        "ETCD_PEER_CERT_FILE": cert, "ETCD_PEER_KEY_FILE": key, "ETCD_PEER_TRUSTED_CA_FILE": ca,
        "ETCD_PEER_CLIENT_CERT_AUTH": "true",
    }
    return ("# Managed by pgops (etcd_servers): edits here are overwritten on the next deploy.\n"
            + "".join(f"{k}={v}\n" for k, v in env.items()))


def etcdctl(command: str) -> str:
    """etcdctl against the local member with the member's own certificate (run as root)."""
    return (f"ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:{ETCD_CLIENT_PORT} "
            f"--cacert={TLS_DIR}/ca.crt --cert={TLS_DIR}/host.crt --key={TLS_DIR}/host.key "
            f"{command}")
