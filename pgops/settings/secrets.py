"""Secrets: which ones a config needs, their names, and the one dotenv-style parser."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pgops.settings.endpoint import POOLER_ROLE, pooler_of
from pgops.settings.ha import HA_ROLES, PATRONI_API_SECRET

#: The repository encryption passphrase.
BACKUP_SECRET = "PGOPS_BACKUP_CIPHER_PASS"
#: Access keys of S3 repositories (repoN-type: s3), kept on the repository host only.
S3_KEY = "PGOPS_BACKUP_S3_KEY"
S3_KEY_SECRET = "PGOPS_BACKUP_S3_KEY_SECRET"


def shared_key_s3(options: Mapping[str, Any], n: int) -> bool:
    """Whether repository `n` of pgBackRest options is S3 reached with shared keys, which
    pgops passes (S3_KEY, S3_KEY_SECRET); `auto` (instance role) and `web-id` need none."""
    return (options.get(f"repo{n}-type") == "s3"
            and options.get(f"repo{n}-s3-key-type", "shared") == "shared")


def role_secret(role: str) -> str:
    """The secret holding a role's password (environment or secrets file)."""
    return f"PGOPS_ROLE_{role.upper()}_PASSWORD"


def role_secrets(settings_data: dict[str, Any]) -> dict[str, str]:
    """secret name -> role, for the roles of raw settings that log in with a password (and
    a cluster member's replication and rewind roles); tolerant of invalid role entries,
    which field validation reports."""
    cluster = bool(settings_data.get("pg_ha_cluster"))
    out = {role_secret(r): r for r in HA_ROLES} if cluster else {}
    try:
        if pooler_of(settings_data.get("pg_pooler"), cluster):
            out[role_secret(POOLER_ROLE)] = POOLER_ROLE
    except ValueError:
        pass  # an invalid pg_pooler: field validation reports it
    for r in settings_data.get("pg_roles") or ():
        name = raw_field(r, "name")
        if isinstance(name, str) and raw_field(r, "login", True) and raw_field(r, "password", True):
            out[role_secret(name)] = name
    return out


def raw_field(obj: Any, key: str, default: Any = None) -> Any:
    """A field of raw (unvalidated) inventory data: a dict or an object."""
    return obj.get(key, default) if isinstance(obj, dict) else getattr(obj, key, default)


def read_secrets_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (dotenv style: comments, `export`, quotes); the one parser for
    secrets files, .env files and the lab's generated secrets. Raises OSError if unreadable."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        k, v = line.removeprefix("export ").split("=", 1)
        out[k.strip()] = v.strip().strip("'\"")
    return out


def secret_names(settings_data: dict[str, Any]) -> list[str]:
    """The secrets a config needs (also used by the lab to generate them); tolerant of
    invalid role entries, which field validation reports."""
    out = [BACKUP_SECRET] if settings_data.get("pg_backup_host") else []
    backrest = settings_data.get("pgbackrest") or {}
    if out and isinstance(backrest, dict) and any(
            (m := re.fullmatch(r"repo(\d+)-type", str(k))) and shared_key_s3(backrest, int(m[1]))
            for k in backrest):
        out += [S3_KEY, S3_KEY_SECRET]
    if settings_data.get("pg_ha_cluster"):
        out.append(PATRONI_API_SECRET)
    return out + list(role_secrets(settings_data))
