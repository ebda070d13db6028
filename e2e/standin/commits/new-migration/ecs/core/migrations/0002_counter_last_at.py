from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('core', '0001_initial'),
    ]

    operations = [
        migrations.AddField(
            model_name='counter',
            name='last_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
