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
        self.register_resource_links()

    @staticmethod
    def register_resource_links() -> None:
        """The operations page names and links volumes and snapshots."""
        from django.urls import reverse

        from workers.dashboard import register_resource_link

        from .models import Snapshot, Volume

        register_resource_link("volume", Volume, lambda pk: reverse("storage:volume", args=[pk]))
        register_resource_link("snapshot", Snapshot, lambda pk: reverse("storage:snapshots"))
