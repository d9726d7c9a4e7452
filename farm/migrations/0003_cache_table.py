"""The panel's shared cache table (settings.CACHES, login throttling).

Made here rather than by ``createcachetable`` so that every fresh database has it
after ``migrate``, whatever the machine; the name is settings.FARM_CACHE_TABLE.
"""

from django.core.management import call_command
from django.db import migrations

CACHE_TABLE = "farm_cache"


def create_cache_table(apps, schema_editor):
    call_command(
        "createcachetable", CACHE_TABLE, database=schema_editor.connection.alias, verbosity=0
    )


def drop_cache_table(apps, schema_editor):
    schema_editor.execute(f"DROP TABLE IF EXISTS {schema_editor.quote_name(CACHE_TABLE)}")


class Migration(migrations.Migration):
    dependencies = [("farm", "0002_operation_lock_name")]

    operations = [migrations.RunPython(create_cache_table, drop_cache_table, elidable=False)]
