"""Facts about pgBackRest: `info` as JSON (run as the repository user)."""

from __future__ import annotations

import json
import shlex
from typing import Any

from pyinfra.api import FactBase


class PgbackrestInfo(FactBase[Any]):
    """`pgbackrest info --output=json` for one stanza or all; None if pgbackrest is absent.
    Each stanza's `status.code` is 0 when it is valid, 1 when its path is missing."""

    def requires_command(self, *args: Any, **kwargs: Any) -> str:
        return "pgbackrest"

    def command(self, stanza: str | None = None) -> str:
        opt = f" --stanza={shlex.quote(stanza)}" if stanza else ""
        return f"cd / && (pgbackrest{opt} --output=json info 2>/dev/null || echo null)"

    def process(self, output: list[str]) -> Any:
        text = "\n".join(output).strip()
        return json.loads(text) if text else None
