from celery import shared_task

from ecs.core.models import Counter


@shared_task
def beat_tick():
    """Run by the worker each time beat sends it: the page shows the count."""
    return Counter.bump('beat_ticks').value
