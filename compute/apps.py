from django.apps import AppConfig


class ComputeConfig(AppConfig):
    name = "compute"
    verbose_name = "Compute"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import policies  # noqa: F401  (registers default rules)
        from .services import hosts, instances, lifecycle, volumes  # noqa: F401  (registers the instance lifecycle)

        instances.register_quota_counters()
        hosts.register_heartbeat_receiver()
        volumes.register_storage_hooks()
        from .views_volumes import register_storage_dashboard

        register_storage_dashboard()
        self.register_resource_links()

    @staticmethod
    def register_resource_links() -> None:
        """The operations page names and links instances (and, for admins, hosts)."""
        from django.urls import reverse

        from workers.dashboard import register_resource_link
        from workers.models import Host

        from .models import Instance

        register_resource_link("instance", Instance, lambda pk: reverse("compute:instance", args=[pk]))
        register_resource_link("host", Host, lambda pk: reverse("compute:admin-hosts"), admin_only=True)
