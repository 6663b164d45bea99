"""pgops deploy: which deploys each host group gets. Logic lives in the pgops package.

    pgops deploy                      # the lab (inventory/lab.py)
    pyinfra inventory/lab.py deploy.py
"""

from pyinfra import host

from pgops.deploys import app_schema, backups, postgres_access, postgres_server
from pgops.remote import address
from pgops.settings.inventory import DB_GROUP, all_settings

dbs = all_settings()  # every database host's settings, validated before any operation is planned
addresses = {h.name: address(h) for h in host.inventory}  # where hosts reach each other

if DB_GROUP in host.groups:
    settings = dbs[host.name]
    # Keywords: pyinfra types a deploy's positional slots as its global arguments (_sudo, ...).
    postgres_server(s=settings, address=addresses[host.name])
    postgres_access(s=settings)
    app_schema(s=settings, address=addresses[host.name])  # "deployed" means a ready database

# pgBackRest on database hosts with pg_backup_host and on their repository hosts
backups(dbs=dbs, addresses=addresses)
