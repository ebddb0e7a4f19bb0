from django.apps import AppConfig


class NetworkingConfig(AppConfig):
    name = "networking"
    verbose_name = "Networking"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import policies  # noqa: F401  (registers default rules)
        from .services import lifecycle, networks  # noqa: F401  (registers the lifecycles)

        networks.register_quota_counters()
        self.register_resource_links()

    @staticmethod
    def register_resource_links() -> None:
        """The operations page names and links networks, ports and floating IPs."""
        from django.urls import reverse

        from workers.dashboard import register_resource_link

        from .models import FloatingIP, Network, Port

        register_resource_link("network", Network, lambda pk: reverse("networking:network", args=[pk]))
        # A port has no page of its own: its network's page lists it (the list, to stay one query).
        register_resource_link("port", Port, lambda pk: reverse("networking:networks"))
        register_resource_link("floating_ip", FloatingIP, lambda pk: reverse("networking:floating-ips"))
