from django.apps import AppConfig

from monitoring.site_lookup import register_site_lookup


class SitesConfig(AppConfig):
    name = "sites"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # dns_settings: importing it here makes a bad DNS setting stop the start-up;
        # operations: registers the site operation kinds.
        from sites import dns_settings, operations  # noqa: F401
        from sites.alerts import site_for_labels

        register_site_lookup(site_for_labels)  # which site an Alertmanager alert is about
