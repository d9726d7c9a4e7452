from django.apps import AppConfig


class NodesConfig(AppConfig):
    name = "nodes"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers node.activate and node.remove (the sites app registers node.drain
        # and node.failover, which follow sites).
        from nodes import node_operations  # noqa: F401
