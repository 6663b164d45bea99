"""An example production inventory: real Debian hosts over SSH. Copy it per environment
(inventory/dev.py, inventory/staging.py, inventory/production.py) and deploy with
`pgops deploy -i inventory/production.py` or `pyinfra inventory/production.py deploy.py`.

Secrets never go here: set PGOPS_ROLE_<NAME>_PASSWORD in the environment, or point
pg_secrets_file at a file outside git (mode 600)."""

_ssh = {
    "ssh_user": "deploy",  # a sudoer; pgops uses sudo for root and postgres steps
    "ssh_key": "~/.ssh/pgops_production",
    "ssh_known_hosts_file": "~/.ssh/known_hosts",
    "ssh_strict_host_key_checking": "yes",
    "_sudo": True,
}

db_servers = (
    [
        ("db1.example.internal", {**_ssh}),
        ("db2.example.internal", {**_ssh, "pg_settings": {"log_min_duration_statement": "250ms"}}),
    ],
    {
        "pg_secrets_file": "/etc/pgops/production-secrets.env",
        "pg_hba_rules": [
            {"database": "app", "user": "app", "address": "10.20.0.0/16"},
            {"database": "app", "user": "migrator", "address": "10.20.5.0/24"},
        ],
        "pg_tuning": {"workload": "web", "max_connections": 200, "disk": "ssd"},
    },
)
