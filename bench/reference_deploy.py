"""The raw-pyinfra reference for `bench/deploy.py`: the same kind of work as pgops's
single-host deploy (packages, TLS files, a settings file, pg_hba, a running service, roles,
a database), written with pyinfra's shipped operations only. Its paths are its
own (nothing pgops manages is touched), so after its first run it is a no-op as far as
pyinfra's operations can tell. The role's password comes from PGOPS_BENCH_REF_PASSWORD.

    pyinfra INVENTORY bench/reference_deploy.py -y
"""

import os
from io import StringIO

from pyinfra.operations import apt, files, postgres, systemd

AS_POSTGRES = {"_sudo": True, "_sudo_user": "postgres"}
TLS = "/etc/ssl/pgops-reference"
PEM = "-----BEGIN CERTIFICATE-----\nreference\n-----END CERTIFICATE-----\n"

apt.packages(name="PostgreSQL + pgvector", packages=["postgresql-17", "postgresql-17-pgvector"],
             no_recommends=True)
files.directory(name="TLS directory", path=TLS, mode="750", user="postgres", group="postgres")
for name, mode in (("ca.crt", "644"), ("server.crt", "644"), ("server.key", "600")):
    files.put(name=f"TLS {name}", src=StringIO(PEM), dest=f"{TLS}/{name}", mode=mode,
              user="postgres", group="postgres")
files.put(name="Settings file", src=StringIO("# reference: no setting\n"),
          dest="/etc/postgresql/17/main/reference.conf", mode="644")
files.put(name="pg_hba (a copy beside)", src=StringIO("local all postgres peer\n"),
          dest="/etc/postgresql/17/main/reference_hba.conf", mode="640", user="postgres",
          group="postgres")
systemd.service(name="PostgreSQL running", service="postgresql@17-main", running=True, enabled=True)
postgres.role(name="Role reference", role="reference", password=os.environ["PGOPS_BENCH_REF_PASSWORD"],
              login=True, **AS_POSTGRES)
postgres.role(name="Role reference_ro", role="reference_ro", login=True, **AS_POSTGRES)
postgres.database(name="Database reference", database="reference", owner="reference", **AS_POSTGRES)
# No extension: pyinfra ships no operation for one (postgres.sql would run on every deploy).
