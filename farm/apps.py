from django.apps import AppConfig


class FarmConfig(AppConfig):
    name = "farm"
    verbose_name = "Farm"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from farm.operations import load_extra_kind_modules

        load_extra_kind_modules()
