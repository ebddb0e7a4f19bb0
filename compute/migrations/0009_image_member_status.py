# Image sharing with the member's consent (issue 16, item 1).

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    """Give every image membership a status. Existing memberships start ``pending``, not ``accepted``:
    the old rules asked the member project nothing, so an existing row is no evidence of consent (it
    may be an image pushed into a victim's catalogue to squat a name). Members accept once to use
    them again; instances already launched from them keep running."""

    dependencies = [
        ('compute', '0008_hosts_in_the_async_plane'),
    ]

    operations = [
        migrations.AddField(
            model_name='imagemember',
            name='status',
            field=models.CharField(
                choices=[('pending', 'pending'), ('accepted', 'accepted'), ('rejected', 'rejected')],
                default='pending',
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name='imagemember',
            name='updated',
            field=models.DateTimeField(auto_now=True, default=django.utils.timezone.now),
            preserve_default=False,
        ),
    ]
