"""The state of many paths in one round trip: what pgops's file operations compare against
(pyinfra's own `files.put` reads three facts per file, one SSH command each)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from pyinfra.api import FactBase

#: One line per path: kind|mode|user|group|sha1|path ("missing" kind: nothing there; a sha1
#: only for a regular file). A link is reported as such, never followed.
_SCRIPT = r"""for p in {paths}; do
  if [ -L "$p" ]; then echo "link|||||$p"
  elif [ -d "$p" ]; then echo "dir|$(stat -c '%a|%U|%G' -- "$p")||$p"
  elif [ -f "$p" ]; then echo "file|$(stat -c '%a|%U|%G' -- "$p")|$(sha1sum < "$p" | cut -d' ' -f1)|$p"
  elif [ -e "$p" ]; then echo "other|||||$p"
  else echo "missing|||||$p"; fi
done"""


@dataclass(frozen=True)
class PathState:
    kind: str  # file, dir, link, other, missing
    mode: int | None = None
    user: str = ""
    group: str = ""
    sha1: str = ""


def parse(lines: list[str]) -> dict[str, PathState]:
    out = {}
    for line in lines:
        kind, mode, user, group, sha1, path = line.split("|", 5)
        out[path] = PathState(kind, int(mode) if mode else None, user, group, sha1)
    return out


class PathStates(FactBase):
    """Kind, mode, owner and SHA-1 of each path, all in one command."""

    def command(self, paths: tuple[str, ...]) -> str:
        return _SCRIPT.format(paths=" ".join(shlex.quote(p) for p in paths))

    def process(self, output) -> dict[str, PathState]:
        return parse(list(output))
