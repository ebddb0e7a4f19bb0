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
