"""The one small exception tree: every error a user sees names the check and the fix.

    PgopsError                 exit code 2 from the CLI
    ├── ConfigError            inventory or settings invalid (every problem at once)
    ├── LabError               the disposable lab is missing or broken
    ├── UnreachableHostError   a host cannot be reached over SSH; nothing was changed
    ├── CommandFailed          a command on a host failed (its stderr in the message)
    ├── BackupError            backup, restore or drill refused or failed
    ├── MigrationFileError     a migration file is malformed
    ├── MigrationError         applying or checking migrations failed
    ├── DbUnavailable          the database did not answer within the retry budget
    └── DumpError              a logical dump or load was refused or failed
"""

try:
    from pyinfra.api.exceptions import PyinfraError
except ImportError:  # the dev image (docker/postgres) runs migrate/seed/dump without pyinfra

    class PyinfraError(Exception):  # type: ignore[no-redef]
        """Stand-in where pyinfra is not installed (Debian packages no pyinfra)."""


class PgopsError(PyinfraError):
    """Base of every error pgops reports to a user (exit code 2 from the CLI)."""


class ConfigError(PgopsError):
    """Inventory or settings are invalid; carries every problem found, not just the first."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


class LabError(PgopsError):
    """The disposable lab (Docker engine, image, network, hosts) is missing or broken."""


class UnreachableHostError(PgopsError):
    """A host cannot be reached over SSH; nothing was changed on any host."""


class CommandFailed(PgopsError):
    """A command run on a host (outside a deploy) exited non-zero."""


class BackupError(PgopsError):
    """A backup, restore or drill was refused (bad target, no backup) or failed."""


class MigrationFileError(PgopsError):
    """A migration file is malformed: its name, directives or up/down parts."""


class MigrationError(PgopsError):
    """Migrations could not be applied, rolled back or checked (drift, order, locks)."""


class DbUnavailable(PgopsError):
    """The database did not answer within the retry budget."""


class DumpError(PgopsError):
    """A logical dump or load was refused or failed."""
