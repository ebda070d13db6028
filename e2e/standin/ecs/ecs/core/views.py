import html
import json

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpResponse

from ecs.core.models import Counter, ReceivedMail


def _cache_state():
    try:
        cache.set('ecs-standin-probe', 'ok', 60)
        return 'ok' if cache.get('ecs-standin-probe') == 'ok' else 'not storing'
    except Exception as e:  # memcached down: say so on the page instead of failing
        return 'error: %s' % e.__class__.__name__


def _migration():
    with connection.cursor() as c:
        c.execute("SELECT name FROM django_migrations WHERE app = 'core' ORDER BY id DESC LIMIT 1")
        row = c.fetchone()
    return row[0] if row else ''


def _fields(hits):
    return [('version', settings.ECS_VERSION)] + hits.page_fields() + [
        ('mails received', ReceivedMail.objects.count()),
        ('beat ticks', Counter.current('beat_ticks')),
        ('migration', _migration()),
        ('cache', _cache_state()),
        ('user switcher', 'enabled' if settings.ECS_USERSWITCHER_ENABLED else 'disabled'),
        ('domain', settings.DOMAIN),
    ]


def index(request):
    """The page: counts the hit (in the request's transaction) and shows the state."""
    hits = Counter.bump('hits')
    rows = '\n'.join('%s: %s' % (html.escape(k), html.escape(str(v))) for k, v in _fields(hits))
    body = ('<!DOCTYPE html>\n<html><head><title>ECS stand-in</title></head><body>\n'
            '<h1>ECS stand-in</h1>\n<p>A test fixture following ECS&#39;s container contract; it is not ECS.</p>\n'
            '<pre id="state">\n%s\n</pre>\n</body></html>\n' % rows)
    return HttpResponse(body, content_type='text/html; charset=utf-8')


def status(request):
    """The page's state as JSON, without counting a hit."""
    hits, _ = Counter.objects.get_or_create(name='hits')
    return HttpResponse(json.dumps(dict(_fields(hits))), content_type='application/json')
