from django.apps import AppConfig


class NetworkingConfig(AppConfig):
    name = "networking"
    verbose_name = "Networking"
    default_auto_field = "django.db.models.BigAutoField"
