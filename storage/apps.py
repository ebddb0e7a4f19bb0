from django.apps import AppConfig


class StorageConfig(AppConfig):
    name = "storage"
    verbose_name = "Storage"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import policies  # noqa: F401  (registers default rules)
        from .services import backends, lifecycle, volumes  # noqa: F401  (registers the lifecycles)

        volumes.register_quota_counters()
        backends.register_heartbeat_receiver()
