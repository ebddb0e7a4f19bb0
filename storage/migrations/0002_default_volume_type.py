"""Seed the default volume type (backend ``local``: the dir pool every storage agent reports by
default), so a volume can be created without naming a type."""

from django.db import migrations


def seed(apps, schema_editor):
    VolumeType = apps.get_model("storage", "VolumeType")
    if not VolumeType.objects.filter(is_default=True).exists():
        VolumeType.objects.get_or_create(
            name="default", defaults={"backend": "local", "is_default": True, "description": "qcow2 files in a dir pool"}
        )


class Migration(migrations.Migration):
    dependencies = [("storage", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
