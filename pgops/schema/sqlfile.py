"""Migration files: names, directives, the up/down split, and statements with their line
numbers (a small lexer that knows quotes, dollar quotes and comments). Pure functions."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from pgops.errors import MigrationFileError

NAME = re.compile(r"^(\d{4,})_([a-z0-9_]+)\.sql$")
DOWN_MARKER = re.compile(r"^--[ \t]*pgops:down[ \t]*$", re.MULTILINE)
NO_TX = re.compile(r"^--[ \t]*pgops:no-transaction[ \t]*$", re.MULTILINE)


@dataclass(frozen=True)
class Statement:
    sql: str
    line: int  # 1-based line in the file where the statement starts


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path
    up: str
    down: str | None
    down_line: int
    transactional: bool
    sha256: str

    @property
    def filename(self) -> str:
        return self.path.name

    def up_statements(self) -> list[Statement]:
        return split_statements(self.up)

    def down_statements(self) -> list[Statement]:
        return split_statements(self.down or "", first_line=self.down_line)


def split_statements(sql: str, first_line: int = 1) -> list[Statement]:
    """Split on top-level semicolons; comments-only chunks are dropped.

    A scanner: a semicolon ends a statement; a comment, quoted string or identifier, or
    dollar-quoted body is skipped as a whole (`_token_end`), so semicolons inside do not count.
    """
    out: list[Statement] = []
    i = start = 0
    while i < len(sql):
        if sql[i] == ";":
            _add(out, sql, start, i, first_line)
            i = start = i + 1
        else:
            i = _token_end(sql, i)
    _add(out, sql, start, len(sql), first_line)
    return out


def _token_end(sql: str, i: int) -> int:
    """Index just past the token at `i`: a comment, a quoted string or identifier, a
    dollar-quoted body, or else the one character."""
    if sql.startswith("--", i):
        return _line_comment_end(sql, i)
    if sql.startswith("/*", i):
        return _block_comment_end(sql, i)
    if sql[i] in ("'", '"'):
        return _quoted_end(sql, i)
    if sql[i] == "$":
        return _dollar_quoted_end(sql, i)
    return i + 1


def _line_comment_end(sql: str, i: int) -> int:
    """Index just past the `--` comment at `i` and its newline (or the end of `sql`)."""
    nl = sql.find("\n", i)
    return len(sql) if nl < 0 else nl + 1


def _quoted_end(sql: str, i: int) -> int:
    """Index just past the '...' string or "..." identifier at `i` (or the end of `sql` if
    unterminated). A doubled quote is part of it; E'...' strings also take backslash
    escapes, standard strings do not."""
    quote = sql[i]
    escapes = quote == "'" and _is_escape_string(sql, i)
    i += 1
    while i < len(sql):
        if escapes and sql[i] == "\\":
            i += 2
        elif sql[i] != quote:
            i += 1
        elif sql.startswith(quote, i + 1):  # doubled quote
            i += 2
        else:
            return i + 1
    return len(sql)


def _is_escape_string(sql: str, i: int) -> bool:
    """Whether the quote at `i` opens an E'...' string: an `E` that starts a word before it."""
    return i > 0 and sql[i - 1] in "eE" and (i < 2 or not sql[i - 2].isalnum())


_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


def _dollar_quoted_end(sql: str, i: int) -> int:
    """Index just past the $tag$...$tag$ body at `i` (or the end of `sql` if unterminated);
    a `$` that opens no tag (a parameter such as $1) is one character."""
    m = _DOLLAR_TAG.match(sql, i)
    if not m:
        return i + 1
    close = sql.find(m.group(0), m.end())
    return len(sql) if close < 0 else close + len(m.group(0))


def _add(out: list[Statement], sql: str, start: int, end: int, first_line: int) -> None:
    chunk = sql[start:end]
    body = _strip_comments(chunk).strip()
    if not body:
        return
    lead = len(chunk) - len(chunk.lstrip())
    # Skip leading comments so the line points at the statement itself.
    text = chunk[lead:]
    while text.startswith(("--", "/*")):
        if text.startswith("--"):
            skip = _line_comment_end(text, 0)
        else:
            skip = _block_comment_end(text, 0)
        lead += skip
        text = chunk[lead:]
        stripped = text.lstrip()
        lead += len(text) - len(stripped)
        text = stripped
    line = first_line + sql.count("\n", 0, start + lead)
    out.append(Statement(chunk[lead:].rstrip(), line))


def _block_comment_end(text: str, i: int) -> int:
    """Index just past the (nested) /* */ comment at `i` (or the end of `text` if unterminated)."""
    depth = 0
    while i < len(text):
        if text.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif text.startswith("*/", i):
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i
        else:
            i += 1
    return len(text)


def _strip_comments(s: str) -> str:
    out, i = [], 0
    while i < len(s):
        if s.startswith("--", i):
            nl = s.find("\n", i)
            i = len(s) if nl < 0 else nl
        elif s.startswith("/*", i):
            i = _block_comment_end(s, i)
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def line_of(stmt: Statement, position: int | None) -> int:
    """File line for a 1-based character position inside a statement (Postgres's
    error position), or the statement's first line."""
    if not position:
        return stmt.line
    return stmt.line + stmt.sql.count("\n", 0, max(position - 1, 0))


def parse(path: Path) -> Migration:
    m = NAME.match(path.name)
    if not m:
        raise MigrationFileError(
            f"{path}: migration files are named NNNN_name.sql (digits, underscore, lower-case name)"
        )
    text = path.read_text()
    parts = DOWN_MARKER.split(text, maxsplit=1)
    up = parts[0]
    down = parts[1] if len(parts) > 1 else None
    # `down` starts with the marker line's own newline: count lines from the marker's line.
    down_line = up.count("\n") + 1 if down is not None else 0
    if not split_statements(up):
        raise MigrationFileError(f"{path}: no SQL statement before `-- pgops:down`")
    transactional = not NO_TX.search(up)
    if not transactional and (len(split_statements(up)) != 1
                              or (down is not None and len(split_statements(down)) > 1)):
        raise MigrationFileError(
            f"{path}: a `-- pgops:no-transaction` migration must hold exactly one statement "
            "(it cannot be rolled back as a whole), and its down part at most one"
        )
    return Migration(
        version=int(m.group(1)), name=m.group(2), path=path, up=up,
        down=down if down is not None and split_statements(down) else None,
        down_line=down_line, transactional=transactional,
        sha256=hashlib.sha256(text.encode()).hexdigest(),
    )


def load_dir(directory: Path) -> list[Migration]:
    if not directory.is_dir():
        raise MigrationFileError(f"{directory}: no migrations directory")
    migrations = [parse(p) for p in sorted(directory.glob("*.sql"))]
    seen: dict[int, Migration] = {}
    for mig in migrations:
        if mig.version in seen:
            raise MigrationFileError(
                f"{mig.path}: version {mig.version} is also {seen[mig.version].filename}"
            )
        seen[mig.version] = mig
    return sorted(migrations, key=lambda x: x.version)
