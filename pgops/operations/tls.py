"""TLS material for Postgres: a per-host self-signed certificate, or files the user gives."""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import operation
from pyinfra.facts.files import File


@operation()
def self_signed_certificate(cert: str, key: str, common_name: str, alt_names: list[str],
                            owner: str = "postgres", days: int = 3650):
    """Generate a self-signed certificate and key if the certificate does not exist yet.

    + alt_names: subjectAltName entries, e.g. ["DNS:db1", "IP:10.0.0.5"]

    An existing certificate is never replaced (rotate by deleting it, or give your own).
    """
    if host.get_fact(File, path=cert) and host.get_fact(File, path=key):
        host.noop(f"certificate {cert} exists")
        return
    q = shlex.quote
    directory = cert.rsplit("/", 1)[0]
    yield (
        f"set -e; install -d -m 755 {q(directory)}; umask 077; "
        f"openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
        f"-days {int(days)} -subj {q('/CN=' + common_name)} "
        f"-addext {q('subjectAltName=' + ','.join(alt_names))} "
        f"-keyout {q(key)} -out {q(cert)} 2>/dev/null; "
        f"chown {owner}:{owner} {q(key)} {q(cert)}; chmod 600 {q(key)}; chmod 644 {q(cert)}"
    )
