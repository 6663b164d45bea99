"""The local lab: disposable Debian 13 hosts started by `pgops lab up` (PGOPS_LAB names the
lab; default `lab`). Fails with a clear message when the lab is not up."""

from pgops.lab.inventory import backup_servers as _lab_backup_servers
from pgops.lab.inventory import db_servers as _lab_db_servers
from pgops.lab.inventory import etcd_servers as _lab_etcd_servers
from pgops.lab.inventory import proxy_servers as _lab_proxy_servers

db_servers = _lab_db_servers()
backup_servers = _lab_backup_servers()
etcd_servers = _lab_etcd_servers()  # `pgops lab up --cluster`: the database hosts
proxy_servers = _lab_proxy_servers()  # `pgops lab up --cluster --proxy`: proxy1
