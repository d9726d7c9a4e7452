from django.apps import AppConfig


class SitesConfig(AppConfig):
    name = "sites"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from sites import operations  # noqa: F401  (registers the site operation kinds)
