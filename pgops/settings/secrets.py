"""Secrets: which ones a config needs, their names, and the one dotenv-style parser (stdlib only)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

#: The repository encryption passphrase.
BACKUP_SECRET = "PGOPS_BACKUP_CIPHER_PASS"
#: Access keys of S3 repositories (repoN-type: s3), kept on the repository host only.
S3_KEY = "PGOPS_BACKUP_S3_KEY"
S3_KEY_SECRET = "PGOPS_BACKUP_S3_KEY_SECRET"


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
    # Keys only for shared-key S3 repositories: `auto` (instance role) and `web-id` need none.
    if out and isinstance(backrest, dict) and any(
            (m := re.fullmatch(r"repo(\d+)-type", str(k))) and v == "s3"
            and backrest.get(f"repo{m[1]}-s3-key-type", "shared") == "shared"
            for k, v in backrest.items()):
        out += [S3_KEY, S3_KEY_SECRET]
    for r in settings_data.get("pg_roles") or ():
        name = raw_field(r, "name")
        if isinstance(name, str) and raw_field(r, "login", True) and raw_field(r, "password", True):
            out.append(f"PGOPS_ROLE_{name.upper()}_PASSWORD")
    return out
