"""The `pgops` command: one module per command group, each parsing its arguments and calling
the package's functions; tables and figures are drawn by `render`."""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()  # pyinfra runs on gevent: patch before anything imports ssl

import sys  # noqa: E402

import click  # noqa: E402

from pgops.cli import backup, client, cluster, deploy, dumps, lab, schedule, schema, tenant  # noqa: E402
from pgops.errors import PgopsError  # noqa: E402


@click.group()
@click.version_option(package_name="pgops")
def main() -> None:
    """Production Postgres + pgvector on Debian hosts: deploy, migrate, back up, restore."""


for command in (lab.lab, deploy.deploy, deploy.status, deploy.up, backup.backup, backup.restore,
                backup.drill, dumps.dump, dumps.load, schedule.schedule_group, schema.migrate,
                schema.seed, client.health, client.shell, cluster.cluster, cluster.upgrade,
                tenant.tenant_group):
    main.add_command(command)


def run() -> None:
    try:
        main(standalone_mode=False)
    except PgopsError as e:
        click.echo(f"pgops: {e}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except Exception as e:  # a database error is the user's to read, not a traceback
        import psycopg

        if not isinstance(e, psycopg.Error):
            raise
        from pgops.cli.common import chosen_hint

        click.echo(f"pgops: database error: {str(e).strip()}{chosen_hint()}", err=True)
        sys.exit(1)
