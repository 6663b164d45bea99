"""Operations on a PostgreSQL cluster: settings (reload or restart, by pg_settings.context),
pg_hba.conf (validated before it takes effect), roles, databases and extensions.

SQL runs through psql as the postgres user (callers pass `_sudo=True, _sudo_user="postgres"`
where noted). Password verifiers are computed locally and masked in pyinfra's output.
"""

from __future__ import annotations

import shlex
from io import StringIO

from pyinfra import host, logger
from pyinfra.api import OperationError, QuoteString, StringCommand, operation
from pyinfra.api.hiddenvalue import HiddenValue
from pyinfra.facts.files import FileContents
from pyinfra.operations import files

from pgops.facts.postgres import (
    PgDatabases,
    PgExtensions,
    PgFunctionGrants,
    PgRoles,
    PgServer,
)
from pgops.operations import cache
from pgops.server import psql, scram
from pgops.server.pgconf import changed_keys, parse_conf
from pgops.server.psql import AS_POSTGRES
from pgops.settings import Database, Role


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def psql_command(sql: str | StringCommand, port: int, database: str = "postgres") -> StringCommand:
    """psql as pgops runs it (server.psql), for pyinfra to run with `_sudo_user="postgres"`;
    `sql` may hold HiddenValue parts, which pyinfra masks in its output."""
    return StringCommand("cd / &&", *psql.options(port), "-d", QuoteString(database), "-c",
                         QuoteString(sql))


# -- settings ------------------------------------------------------------------------------
def settings_action(changed: set[str], settings: dict | None) -> tuple[str, list[str]]:
    """How to apply changed settings: ("none" | "start" | "restart" | "reload", the settings
    behind it), from the server's pg_settings by name (None: the server is not running).

    A stopped server is started (restarted) whatever changed. A running one is restarted
    when a changed setting has context `postmaster` (a setting pg_settings does not know
    counts as one) or a restart is already pending, reloaded when something else changed,
    and left alone when nothing did.
    """
    if settings is None:
        return "start", []
    pending = sorted(k for k, v in settings.items() if v.get("pending_restart"))
    restart = sorted(k for k in changed
                     if (settings.get(k) or {}).get("context", "postmaster") == "postmaster")
    if restart or pending:
        return "restart", restart + pending
    if changed:
        return "reload", sorted(changed)
    return "none", []


@operation()
def settings_file(path: str, content: str, port: int, service: str, check: str):
    """Write the pgops settings file and apply it: reload when every changed setting allows
    it, restart when one has context `postmaster` (or a restart is already pending).

    + path: the conf.d file pgops owns
    + content: its rendered text
    + port, service: to read pg_settings and to reload/restart the cluster
    + check: a shell command that fails when the cluster's configuration does not load
      (Cluster.config_check_command): a new file it refuses is put back, before any
      reload or restart, so a typo in pg_settings never stops the server

    Settings pgops does not write (Debian's postgresql.conf) are left as they are.
    """
    current = cache.fact(FileContents, path=path)
    old = parse_conf("\n".join(current)) if current else {}
    changed = changed_keys(old, parse_conf(content))
    server = cache.fact(PgServer, port=port, **AS_POSTGRES)
    action, keys = settings_action(changed, None if server is None else server["settings"])
    if action == "none":
        host.noop(f"settings in {path} are current")
        return
    if changed:
        yield from files.put._inner(src=StringIO(content), dest=f"{path}.pgops-new", user="postgres",
                                    group="postgres", mode="644")
        yield checked_swap_script(path, check)
    why = {"start": f"{service} is not running: starting it",
           "restart": f"restart needed for: {', '.join(keys)}",
           "reload": f"reload is enough for: {', '.join(keys)}"}[action]
    logger.info(f"{host.print_prefix}{why}")
    yield f"systemctl {'reload' if action == 'reload' else 'restart'} {service}"


def _swap_in(path: str) -> str:
    """Shell moving `path`.pgops-new over `path`. It defines `undo` (the current file back
    exactly as it was, or the new one removed when there was none: a refused file leaves
    nothing behind), `commit` (the replaced file kept as `path`.pgops-prev) and `kept`
    (what undo does, for the message)."""
    p, new, prev, back = (shlex.quote(f) for f in (path, f"{path}.pgops-new", f"{path}.pgops-prev",
                                                   f"{path}.pgops-undo"))
    return (f"if [ -e {p} ]; then cp -p {p} {back}; undo() {{ mv {back} {p}; }}; "
            f"commit() {{ mv {back} {prev}; }}; kept=\"previous file kept\"; "
            f"else undo() {{ rm -f {p}; }}; commit() {{ :; }}; "
            f"kept=\"no previous file, new file removed\"; fi; "
            f"mv {new} {p}; ")


def checked_swap_script(path: str, check: str) -> str:
    """The shell that swaps `path`.pgops-new in and runs `check`; if the check fails, it
    undoes the swap and exits 1 with the check's complaints (its LOG/FATAL lines, which name
    the file, line and parameter)."""
    p = shlex.quote(path)
    return (f"set -e; cd /; {_swap_in(path)}"
            f"if ! out=$({check} 2>&1); then undo; "
            f"why=$(printf '%s\\n' \"$out\" | grep -E 'LOG|FATAL|ERROR' | tr '\\n' ' '); "
            f"printf '%s refused, %s: %s\\n' {p} \"$kept\" \"${{why:-$out}}\" >&2; exit 1; fi; commit")


@operation()
def hba_file(path: str, content: str, port: int, service: str):
    """Replace pg_hba.conf as a whole, check it with pg_hba_file_rules, and reload only if
    Postgres accepts every line; otherwise put the previous file back and fail.

    A rejected file never takes effect: the running server keeps its loaded rules. If the
    check cannot run (psql fails: server down, connection refused), the previous file is
    put back too. With no previous file (first deploy) there is nothing to put back: the
    new file is removed.
    """
    current = cache.fact(FileContents, path=path)
    if current is not None and "\n".join(current).strip() == content.strip():
        host.noop(f"{path} is current")
        return
    yield from files.put._inner(src=StringIO(content), dest=f"{path}.pgops-new", user="postgres",
                                group="postgres", mode="640")
    yield hba_swap_script(path, port, service)


def hba_swap_script(path: str, port: int, service: str) -> str:
    """The shell that swaps `path`.pgops-new in (backing the current file up to
    `path`.pgops-prev), checks it with pg_hba_file_rules and reloads, or undoes the swap and
    exits 1 with a message naming the file. Only the query's rows (stdout) can refuse the
    file; psql's stderr goes to a temporary file, quoted only when psql itself fails, so a
    warning there is no refusal."""
    check = psql.shell("select format('line %s: %s', line_number, error) "
                       "from pg_hba_file_rules where error is not null", port)
    p = shlex.quote(path)
    return (
        f"set -e; cd /; "
        "stderr=$(mktemp); trap 'rm -f \"$stderr\"' EXIT; "
        f"{_swap_in(path)}"
        f'if ! errors=$({check} 2>"$stderr"); then undo; '
        f"printf '%s not checked (psql failed: %s), %s\\n' {p} \"$(cat \"$stderr\")\" \"$kept\" >&2; "
        f"exit 1; fi; "
        f"if [ -n \"$errors\" ]; then undo; "
        f"printf '%s refused, %s: %s\\n' {p} \"$kept\" \"$errors\" >&2; exit 1; fi; "
        # A reload asked of a unit still starting (a restart of a killed run's, still under
        # way) is merged into that start by systemd and lost: the server keeps the file it
        # read. Wait (at most 60 s) until the unit has started.
        f"commit; n=0; while [ \"$(systemctl is-active {service})\" = activating ] && "
        f"[ $n -lt 300 ]; do sleep 0.2; n=$((n + 1)); done; systemctl reload {service}"
    )


# -- roles, databases, extensions -----------------------------------------------------------
_ATTRS = (("superuser", "SUPERUSER"), ("createdb", "CREATEDB"), ("createrole", "CREATEROLE"),
          ("login", "LOGIN"), ("replication", "REPLICATION"), ("bypassrls", "BYPASSRLS"))


def _attr_sql(role: Role, current: dict | None) -> list[str]:
    out = []
    for key, word in _ATTRS:
        want = getattr(role, key)
        if current is None or bool(current.get(key)) != want:
            out.append(word if want else f"NO{word}")
    if current is None or current.get("connection_limit") != role.connection_limit:
        out.append(f"CONNECTION LIMIT {role.connection_limit}")
    return out


@operation()
def role(role: Role, password: str | None, port: int = 5432):
    """Create or alter a role to match: attributes (promoted and demoted), connection limit,
    memberships (granted and revoked) and password (checked against the SCRAM verifier and
    set only when it differs; the plaintext never leaves this machine).

    Roles not in the config are left alone; pgops never drops a role.
    Call with `_sudo=True, _sudo_user="postgres"`.
    """
    roles = cache.fact(PgRoles, port=port) or {}
    current = roles.get(role.name)
    stmts: list[str | StringCommand] = []
    attrs = _attr_sql(role, current)
    name = quote_ident(role.name)
    if current is None:
        stmts.append(f"CREATE ROLE {name} WITH {' '.join(attrs)}")
    elif attrs:
        stmts.append(f"ALTER ROLE {name} WITH {' '.join(attrs)}")
    if password is not None:
        if current is None or not scram.matches(password, current.get("scram_params"),
                                                 current.get("scram_digest")):
            stmts.append(StringCommand(
                f"ALTER ROLE {name} PASSWORD '",
                HiddenValue(scram.verifier(password), "<scram-verifier>"), "'", _separator="",
            ))
    elif current is not None and current.get("scram_digest"):
        stmts.append(f"ALTER ROLE {name} PASSWORD NULL")
    have = set((current or {}).get("member_of") or ())
    for g in sorted(set(role.member_of) - have):
        stmts.append(f"GRANT {quote_ident(g)} TO {name}")
    for g in sorted(have - set(role.member_of)):
        stmts.append(f"REVOKE {quote_ident(g)} FROM {name}")
    if not stmts:
        host.noop(f"role {role.name} is current")
        return
    for stmt in stmts:
        yield psql_command(stmt, port)


@operation()
def database(db: Database, port: int = 5432):
    """Create a database (owner, encoding, locale from template0) or fix its owner.

    Encoding and locale cannot change after creation: a mismatch is an error, never a
    silent drop and re-create. Call with `_sudo=True, _sudo_user="postgres"`.
    """
    dbs = cache.fact(PgDatabases, port=port) or {}
    current = dbs.get(db.name)
    name = quote_ident(db.name)
    if current is None:
        yield psql_command(
            f"CREATE DATABASE {name} OWNER {quote_ident(db.owner)} ENCODING "
            f"{quote_literal(db.encoding)} LOCALE {quote_literal(db.locale)} TEMPLATE template0",
            port,
        )
        return
    if current["encoding"] != db.encoding or current["collate"] != db.locale:
        raise OperationError(
            f"database {db.name} exists with encoding {current['encoding']} and locale "
            f"{current['collate']}; config says {db.encoding}/{db.locale}. pgops will not "
            "re-create a database: dump, drop and let deploy create it, or fix the config."
        )
    if current["owner"] != db.owner:
        yield psql_command(f"ALTER DATABASE {name} OWNER TO {quote_ident(db.owner)}", port)
        return
    host.noop(f"database {db.name} is current")


@operation()
def extension(database: str, extension_name: str, port: int = 5432):
    """Create an extension in a database if missing (never upgraded or dropped here).
    Call with `_sudo=True, _sudo_user="postgres"`."""
    installed = cache.fact(PgExtensions, database=database, port=port) or {}
    if extension_name in installed:
        host.noop(f"extension {extension_name} {installed[extension_name]} is in {database}")
        return
    yield psql_command(f"CREATE EXTENSION IF NOT EXISTS {quote_ident(extension_name)}", port, database)




@operation()
def function_grants(role_name: str, functions: tuple[str, ...], port: int = 5432):
    """Grant EXECUTE on functions (by signature) to a role, where it lacks it (never revoked).

    + functions: e.g. ("pg_catalog.pg_ls_dir(text, boolean, boolean)",)

    Call with `_sudo=True, _sudo_user="postgres"`, after the role exists.
    """
    have = host.get_fact(PgFunctionGrants, role=role_name, functions=functions, port=port) or {}
    missing = [f for f in functions if not have.get(f)]
    if not missing:
        host.noop(f"{role_name} may execute {len(functions)} functions")
        return
    for f in missing:
        yield psql_command(f"GRANT EXECUTE ON FUNCTION {f} TO {quote_ident(role_name)}", port)
