"""pgops deploy: which deploys each host group gets. Logic lives in the pgops package.

    pgops deploy                      # the lab (inventory/lab.py)
    pyinfra inventory/lab.py deploy.py
"""

from pyinfra import host

from pgops.deploys import app_schema, backups, postgres_access, postgres_server
from pgops.settings.inventory import DB_GROUP, all_settings, settings_for

all_settings()  # validates every host of the inventory before any operation is planned

if DB_GROUP in host.groups:
    settings = settings_for(host)
    postgres_server(settings)
    postgres_access(settings)
    app_schema(settings)  # "deployed" means a ready database

backups()  # pgBackRest on database hosts with pg_backup_host and on their repository hosts
