"""pgops deploy: which deploys each host group gets. Logic lives in the pgops package.

    pgops deploy                      # the lab (inventory/lab.py)
    pyinfra inventory/lab.py deploy.py
"""

from pyinfra import host

from pgops.deploys import app_schema, postgres_access, postgres_server
from pgops.inventory import DB_GROUP, settings_for

if DB_GROUP in host.groups:
    settings = settings_for(host)  # validates every host of the inventory first
    postgres_server(settings)
    postgres_access(settings)
    app_schema(settings)  # last: "deployed" means a ready database
