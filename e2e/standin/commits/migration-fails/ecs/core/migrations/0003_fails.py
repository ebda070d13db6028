from django.db import migrations


def fail(apps, schema_editor):
    # Written first, so a test can see that the migration's transaction was rolled back.
    apps.get_model('core', 'Counter').objects.create(name='migration-0003-ran', value=1)
    raise RuntimeError('migration-fails: migration 0003 of the stand-in fails on purpose')


class Migration(migrations.Migration):

    dependencies = [
        ('core', '0002_counter_last_at'),
    ]

    operations = [
        migrations.RunPython(fail, migrations.RunPython.noop),
    ]
