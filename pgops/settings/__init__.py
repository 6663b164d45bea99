"""The one typed, validated configuration: the model, its loading from inventory data and
secrets, and (in `pgops.settings.inventory`, which needs pyinfra) the inventory as a whole."""

from pgops.settings.load import load_settings, reference_problems
from pgops.settings.model import (
    DISTRO_MAJORS,
    LOCAL_REPOSITORY,
    SUPPORTED_MAJORS,
    BackupTimers,
    Database,
    Role,
    Settings,
    SettingValue,
    Tuning,
)
from pgops.settings.secrets import S3_KEY, S3_KEY_SECRET, read_secrets_file, secret_names

__all__ = [
    "BackupTimers", "DISTRO_MAJORS", "Database", "LOCAL_REPOSITORY", "Role", "S3_KEY",
    "S3_KEY_SECRET", "SUPPORTED_MAJORS", "SettingValue", "Settings", "Tuning", "load_settings",
    "read_secrets_file", "reference_problems", "secret_names",
]
