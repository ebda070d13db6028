import os

from django.conf import settings
from django.core.management.base import BaseCommand

from ecs.core import pki
from ecs.core.models import Counter


class Command(BaseCommand):
    help = 'Idempotent setup after migrate: directories, the client-certificate CA (ECS_CA_ROOT), base rows.'

    def handle(self, *args, **options):
        for d in (settings.STORAGE_VAULT_DIR, settings.STORAGE_VAULT_GPG_HOME, settings.ECS_DOWNLOAD_CACHE_DIR):
            os.makedirs(d, exist_ok=True)
        os.chmod(settings.STORAGE_VAULT_GPG_HOME, 0o700)
        if pki.bootstrap():
            self.stdout.write('bootstrap: created the client-certificate CA in %s' % settings.ECS_CA_ROOT)
        else:
            self.stdout.write('bootstrap: client-certificate CA in %s exists' % settings.ECS_CA_ROOT)
        for name in ('hits', 'beat_ticks'):
            Counter.objects.get_or_create(name=name)
        from django.contrib.auth.models import Group
        Group.objects.get_or_create(name='EC-Office')
