# Hosts move to the async plane (workers.Host: name, roles, zone, enabled, heartbeat); what compute
# knows of each (capacity, claims, domains) stays here as its ComputeNode, keyed by the same id, so
# instances keep pointing at the same host.

import compute.models
import django.db.models.deletion
from django.db import migrations, models


HOST_FIELDS = ("id", "name", "uri", "availability_zone", "enabled", "disabled_reason", "last_heartbeat")
NODE_FIELDS = (
    "hypervisor_type",
    "hypervisor_version",
    "vcpus",
    "memory_mb",
    "disk_gb",
    "vcpus_used",
    "memory_mb_used",
    "disk_gb_used",
    "cpu_allocation_ratio",
    "ram_allocation_ratio",
    "disk_allocation_ratio",
    "domains",
    "domains_reported_at",
)


def split_hosts(apps, schema_editor):
    OldHost = apps.get_model("compute", "Host")
    Host = apps.get_model("workers", "Host")
    ComputeNode = apps.get_model("compute", "ComputeNode")
    for old in OldHost.objects.all().iterator():
        host = Host.objects.create(roles=["compute"], **{f: getattr(old, f) for f in HOST_FIELDS})
        Host.objects.filter(pk=host.pk).update(created=old.created)
        ComputeNode.objects.create(host=host, **{f: getattr(old, f) for f in NODE_FIELDS})


class Migration(migrations.Migration):

    dependencies = [
        ('compute', '0007_resource_action'),
        ('workers', '0002_hosts_in_the_async_plane'),
    ]

    operations = [
        migrations.CreateModel(
            name='ComputeNode',
            fields=[
                ('host', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='compute', serialize=False, to='workers.host')),
                ('hypervisor_type', models.CharField(blank=True, default='', max_length=32)),
                ('hypervisor_version', models.BigIntegerField(default=0)),
                ('vcpus', models.PositiveIntegerField(default=0, verbose_name='vCPUs')),
                ('memory_mb', models.PositiveIntegerField(default=0, verbose_name='memory (MB)')),
                ('disk_gb', models.PositiveIntegerField(default=0, verbose_name='local disk (GB)')),
                ('vcpus_used', models.PositiveIntegerField(default=0, verbose_name='vCPUs used')),
                ('memory_mb_used', models.PositiveIntegerField(default=0, verbose_name='memory used (MB)')),
                ('disk_gb_used', models.PositiveIntegerField(default=0, verbose_name='local disk used (GB)')),
                ('cpu_allocation_ratio', models.FloatField(default=compute.models._default_cpu_ratio)),
                ('ram_allocation_ratio', models.FloatField(default=compute.models._default_ram_ratio)),
                ('disk_allocation_ratio', models.FloatField(default=1.0)),
                ('domains', models.JSONField(blank=True, default=list, help_text='the domains libvirt last listed on the host (power sync)')),
                ('domains_reported_at', models.DateTimeField(blank=True, null=True)),
                ('updated', models.DateTimeField(auto_now=True)),
            ],
            options={
                'verbose_name': 'compute node',
                'ordering': ['host__name'],
            },
        ),
        migrations.RunPython(split_hosts, migrations.RunPython.noop),
        migrations.AlterField(
            model_name='instance',
            name='host',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='instances', to='workers.host'),
        ),
        migrations.DeleteModel(
            name='Host',
        ),
    ]
