# The instance action log moves into identity's audit trail (ResourceAction), shared by every
# resource kind: its rows are copied there, then the compute table goes.

from django.db import migrations


def copy_to_audit_trail(apps, schema_editor):
    InstanceAction = apps.get_model("compute", "InstanceAction")
    ResourceAction = apps.get_model("identity", "ResourceAction")
    rows = InstanceAction.objects.select_related("instance").iterator(chunk_size=2000)
    batch = []
    for row in rows:
        batch.append(
            ResourceAction(
                resource_type="instance",
                resource_id=row.instance_id,
                project_id=row.instance.project_id,
                action=row.action,
                user_id=row.user_id,
                request_id=row.request_id,
                operation_id=row.operation_id,
                start_time=row.start_time,
                finish_time=row.finish_time,
                result=row.result,
                message=row.message,
                idempotency_key=row.idempotency_key,
            )
        )
        if len(batch) >= 2000:
            ResourceAction.objects.bulk_create(batch)
            batch = []
    ResourceAction.objects.bulk_create(batch)


class Migration(migrations.Migration):
    dependencies = [
        ("compute", "0006_instance_action_idempotency_key"),
        ("identity", "0003_resource_action"),
    ]

    operations = [
        migrations.RunPython(copy_to_audit_trail, migrations.RunPython.noop),
        migrations.DeleteModel(name="InstanceAction"),
    ]
