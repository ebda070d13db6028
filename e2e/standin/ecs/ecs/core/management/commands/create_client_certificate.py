import os
import secrets

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email

from ecs.core import pki
from ecs.core.management.commands._values import values
from ecs.core.models import ClientCertificate


class Command(BaseCommand):
    help = ('Issue a client certificate (PKCS#12, signed by the CA in ECS_CA_ROOT) for EMAIL and NAME, '
            'write it to --out and print its passphrase once. Values from argv, or with --json a JSON '
            'object {"email", "name"} on stdin.')

    def add_arguments(self, parser):
        parser.add_argument('email', nargs='?')
        parser.add_argument('name', nargs='?')
        parser.add_argument('--out', required=True, help='where the .p12 file goes (written 0600)')
        parser.add_argument('--json', action='store_true', help='read the values as a JSON object from stdin')

    def handle(self, *args, **options):
        email, name = values(options, ['email', 'name'])
        try:
            validate_email(email)
        except ValidationError:
            raise CommandError('not an email address: %r' % email)
        out = options['out']
        if not os.path.isdir(os.path.dirname(os.path.abspath(out))):
            raise CommandError('--out %s: no such directory' % out)
        passphrase = secrets.token_urlsafe(18)
        try:
            serial = pki.issue_pkcs12(email, name, out, passphrase)
        except (RuntimeError, ValueError) as e:
            raise CommandError(str(e))
        ClientCertificate.objects.create(serial=serial, email=email, cn=name)
        self.stderr.write('wrote %s (serial %s) for %s <%s>; passphrase (shown once):' % (out, serial, name, email))
        self.stdout.write(passphrase)
