"""The application schema: migration files, the migration engine and the sample data."""

#: Seconds a second migration runner waits for the advisory lock (`pgops migrate --lock-wait`);
#: here rather than in migrate.py, so that the CLI reads it without loading psycopg.
LOCK_WAIT_S = 30.0
