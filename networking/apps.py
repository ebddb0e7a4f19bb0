from django.apps import AppConfig


class NetworkingConfig(AppConfig):
    name = "networking"
    verbose_name = "Networking"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import policies  # noqa: F401  (registers default rules)
        from .services import lifecycle, networks  # noqa: F401  (registers the lifecycles)

        networks.register_quota_counters()
