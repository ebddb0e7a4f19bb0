from django.db import migrations


def seed_roles(apps, schema_editor):
    Role = apps.get_model("identity", "Role")
    for name in ("admin", "member", "reader"):
        Role.objects.get_or_create(name=name, defaults={"description": f"built-in {name} role"})


class Migration(migrations.Migration):
    dependencies = [("identity", "0001_initial")]
    operations = [migrations.RunPython(seed_roles, migrations.RunPython.noop)]
