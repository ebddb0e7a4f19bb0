from django.apps import AppConfig


class WorkersConfig(AppConfig):
    name = "workers"
    verbose_name = "Asynchronous plane"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import lifecycle  # noqa: F401  (connects the operation_failed receiver)
