from django.conf import settings
from django.db import models
from django.db.models import F
from django.utils import timezone


class Counter(models.Model):
    """A named counter in the database: page hits, beat ticks."""
    name = models.CharField(max_length=64, unique=True)
    value = models.BigIntegerField(default=0)
    # Added by migration 0002 (the e2e's new-migration commit).
    last_at = models.DateTimeField(null=True, blank=True)

    @classmethod
    def bump(cls, name):
        c, _ = cls.objects.get_or_create(name=name)
        cls.objects.filter(pk=c.pk).update(value=F('value') + 1, last_at=timezone.now())
        c.refresh_from_db()
        return c

    @classmethod
    def current(cls, name):
        c = cls.objects.filter(name=name).first()
        return c.value if c else 0

    def page_fields(self):
        """What the page shows of this counter, as (label, value) pairs."""
        return [('hits', self.value), ('last hit', self.last_at.isoformat() if self.last_at else 'never')]


class ReceivedMail(models.Model):
    """A mail the stand-in's smtpd received."""
    received_at = models.DateTimeField(auto_now_add=True)
    sender = models.TextField()
    recipients = models.TextField()  # comma-separated envelope recipients
    subject = models.TextField(blank=True)
    size = models.IntegerField()  # bytes of the raw message


class UserProfile(models.Model):
    """What ECS keeps beside Django's user for an internal user."""
    GENDERS = (('f', 'female'), ('m', 'male'), ('x', 'other'))
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name='profile')
    gender = models.CharField(max_length=1, choices=GENDERS)
    is_internal = models.BooleanField(default=False)


class ClientCertificate(models.Model):
    """A client certificate issued by the CA in ECS_CA_ROOT."""
    created_at = models.DateTimeField(auto_now_add=True)
    serial = models.CharField(max_length=64, unique=True)
    email = models.EmailField()
    cn = models.CharField(max_length=200)
