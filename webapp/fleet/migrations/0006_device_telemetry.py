from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("fleet", "0005_frame_place_desc"),
    ]

    operations = [
        migrations.AddField(
            model_name="device",
            name="telemetry",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name="device",
            name="telemetry_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
