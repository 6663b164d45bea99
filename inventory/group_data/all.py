"""pgops defaults for every host. Every key is optional; these are the values used when an
inventory says nothing. Override per environment in the inventory file (group data) or per
host (host data). `pgops deploy` validates all of it before touching any host."""

# PostgreSQL major. Debian 13 (trixie) ships 17; Debian 12 ships 15. Any other major needs
# pg_apt_repository (e.g. the PostgreSQL project's own repository, PGDG):
#   pg_apt_repository = {"url": "https://apt.postgresql.org/pub/repos/apt",
#                        "suite": "trixie-pgdg",
#                        "key_url": "https://www.postgresql.org/media/keys/ACCC4CF8.asc"}
pg_major = 17
pg_cluster = "main"
pg_port = 5432
pg_listen_addresses = ["*"]
# Data checksums for the cluster the package creates (PostgreSQL verifies each page it reads,
# pgBackRest each page it backs up). An existing cluster keeps what it has: turning them on
# needs it stopped (pg_checksums --enable), which pgops does not do behind your back.
pg_data_checksums = True

# TLS is always on, and clients can verify the server (sslmode=verify-full). With no files
# given, pgops keeps a PostgreSQL CA on this machine (postgres-pki/ beside pg_secrets_file)
# and issues each host a certificate for its name and address (a cluster member's also names
# every member and proxy host, whose HAProxy may carry a client to it); pgops's own clients
# and the URLs it prints verify with that CA. More names clients dial (DNS, a virtual IP):
#   pg_tls_names = ["db.example.com"]
# Or give your own (local paths), with the CA that signed them:
#   pg_tls_cert_file = "/etc/pgops/certs/db1.crt"
#   pg_tls_key_file = "/etc/pgops/certs/db1.key"
#   pg_tls_ca_file = "/etc/pgops/certs/ca.crt"

# Tuning is computed from each host's RAM (cgroup limit if lower), cores and disk type, the
# way pgtune does. Inputs:
pg_tuning = {"workload": "web", "max_connections": 100, "disk": "auto"}
# Any postgresql.conf setting, applied last (wins over tuning). pgops reloads when every
# changed setting allows it and restarts only when one needs it (pg_settings.context).
pg_settings = {
    # "log_min_duration_statement": "500ms",
}

# pg_hba.conf is managed as a whole: local peer for postgres, then one `hostssl` line per
# rule (methods: scram-sha-256, cert, reject; never trust over TCP).
#   {"database": "app", "user": "app,migrator", "address": "10.0.0.0/8"}
pg_hba_rules = []
# Raw extra lines, checked on the host with pg_hba_file_rules before the reload.
pg_hba_extra = []

# Roles: created and altered to match (attributes are promoted and demoted), never dropped.
# A login role with password=True takes its password from PGOPS_ROLE_<NAME>_PASSWORD in the
# environment or in pg_secrets_file (KEY=VALUE lines, outside git).
pg_roles = [
    # Owns the schema and runs migrations (sql/migrations/).
    {"name": "migrator", "login": True, "connection_limit": 10},
    # The group the migrations grant DML to; owns nothing, cannot log in.
    {"name": "app_rw", "login": False},
    # What the application connects as: member of app_rw, row-level security applies.
    {"name": "app", "login": True, "connection_limit": 80, "member_of": ["app_rw"]},
]
pg_databases = [
    {"name": "app", "owner": "migrator", "encoding": "UTF8", "locale": "C.UTF-8",
     "extensions": ["vector"]},
]
# The database `pgops migrate`/`seed`/`health` act on when no target is given; `pgops deploy`
# applies sql/migrations/ to it as its last step, connecting as pg_migration_role.
pg_app_database = "app"
pg_migration_role = "migrator"

# Backups: pg_backup_host names a host of backup_servers (inventory/lab.py sets the lab's),
# or is "local" (the database host keeps its own repository: its disk, or S3);
# pgBackRest options by their own names go to each host's stanza, over pgops's defaults
# (aes-256-cbc from PGOPS_BACKUP_CIPHER_PASS, lz4, retention full=2 diff=7). S3 repositories
# take their keys from PGOPS_BACKUP_S3_KEY and PGOPS_BACKUP_S3_KEY_SECRET.
#   pgbackrest = {"repo1-retention-full": 4}
# The transport between repository and database hosts: "ssh" (default) or "tls" (pgBackRest's
# TLS server on both, port 8432, certificates from a CA pgops keeps in pg_backup_tls_dir,
# default beside pg_secrets_file; faster, see README):
#   pg_backup_transport = "tls"
# systemd timers on the repository host instead of `pgops schedule run` ({} = the defaults;
# each job an OnCalendar= expression, or None to drop it):
#   pg_backup_timers = {"full": "Sun *-*-* 01:00:00", "diff": "Mon..Sat *-*-* 01:00:00",
#                       "incr": "hourly", "drill": "*-*-* 04:30:00", "status": "*:0/5"}

# The clients' endpoint. PgBouncer (pg_pooler): unset = on for cluster members, off for a
# single host; True, False, or its settings (pgops.settings.endpoint.Pooler):
#   pg_pooler = {"port": 6432, "pool_mode": "transaction", "default_pool_size": 20,
#                "max_db_connections": 20, "max_client_conn": 1000, "query_wait_timeout": 30}
# HAProxy on a cluster's members (pg_proxy): read-write and read-only ports, PgBouncer's
# loopback route to the leader, statistics/metrics, the read-only port's lag limit (bytes):
#   pg_proxy = {"rw_port": 5000, "ro_port": 5001, "leader_port": 5002, "stats_port": 8404,
#               "max_replica_lag": 1048576, "check_interval_ms": 1000}
