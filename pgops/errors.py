"""The one small exception tree: every error a user sees names the check and the fix."""

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
