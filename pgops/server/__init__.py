"""One PostgreSQL server on a Debian host: cluster paths, psql, its config files, tuning, SCRAM."""
