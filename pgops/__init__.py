"""pgops: production Postgres + pgvector on Debian hosts, deployed with pyinfra."""

from pathlib import Path

__version__ = "0.1.0"

#: The project checkout: deploy.py, inventory/ and sql/ live here.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
