"""The clients' endpoint: PgBouncer pools in front of Postgres, HAProxy routing to the
cluster's leader and replicas, and their pause, resume and status."""
