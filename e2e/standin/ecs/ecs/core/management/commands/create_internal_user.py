import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django.db import transaction

from ecs.core.management.commands._values import values
from ecs.core.models import UserProfile

GENDERS = {'f': 'f', 'female': 'f', 'm': 'm', 'male': 'm', 'x': 'x', 'other': 'x'}


class Command(BaseCommand):
    help = ('Create an internal user in the group EC-Office and print a generated passphrase once. '
            'Values from argv, or with --json a JSON object {"email", "first_name", "last_name", "gender"} on stdin.')

    def add_arguments(self, parser):
        parser.add_argument('email', nargs='?')
        parser.add_argument('first_name', nargs='?')
        parser.add_argument('last_name', nargs='?')
        parser.add_argument('gender', nargs='?', help='f, m or x')
        parser.add_argument('--json', action='store_true', help='read the values as a JSON object from stdin')

    def handle(self, *args, **options):
        email, first, last, gender = values(options, ['email', 'first_name', 'last_name', 'gender'])
        try:
            validate_email(email)
        except ValidationError:
            raise CommandError('not an email address: %r' % email)
        if gender.lower() not in GENDERS:
            raise CommandError('gender %r: want f, m or x' % gender)
        User = get_user_model()
        email = email.lower()
        if User.objects.filter(email__iexact=email).exists():
            raise CommandError('a user with email %s exists' % email)
        passphrase = secrets.token_urlsafe(18)
        with transaction.atomic():
            user = User(username=email[:150], email=email, first_name=first[:150], last_name=last[:150])
            user.set_password(passphrase)
            user.save()
            UserProfile.objects.create(user=user, gender=GENDERS[gender.lower()], is_internal=True)
            group, _ = Group.objects.get_or_create(name='EC-Office')
            user.groups.add(group)
        self.stderr.write('created internal user %s in group EC-Office; passphrase (shown once):' % email)
        self.stdout.write(passphrase)
