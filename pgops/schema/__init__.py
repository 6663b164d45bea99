"""The application schema: migration files, the migration engine and the sample data."""
