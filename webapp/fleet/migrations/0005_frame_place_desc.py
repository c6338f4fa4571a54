from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("fleet", "0004_frame_signature"),
    ]

    operations = [
        migrations.AddField(
            model_name="frame",
            name="place_desc",
            field=models.BinaryField(blank=True, null=True),
        ),
    ]
