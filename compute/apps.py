from django.apps import AppConfig


class ComputeConfig(AppConfig):
    name = "compute"
    verbose_name = "Compute"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import (
            policies,  # noqa: F401  (registers default rules)
            tasks,  # noqa: F401  (connects the operation_failed receiver)
        )
        from .services import instances

        instances.register_quota_counters()
