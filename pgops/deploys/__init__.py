"""pyinfra deploys: named units composed from operations, one per concern."""

from pgops.deploys.access import postgres_access
from pgops.deploys.backup import backups
from pgops.deploys.schema import app_schema
from pgops.deploys.server import postgres_server

__all__ = ["postgres_server", "postgres_access", "app_schema", "backups"]
