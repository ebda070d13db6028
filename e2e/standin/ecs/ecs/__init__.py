# The ECS stand-in: a test fixture that follows ECS's container contract. It is not ECS.
from .celery import app as celery_app

__all__ = ('celery_app',)
