"""Operator commands take their values as data: from argv or as a JSON object on stdin
(--json), never as code."""
import json
import sys

from django.core.management.base import CommandError


def values(options, names):
    if options.get('json'):
        try:
            obj = json.load(sys.stdin)
        except ValueError as e:
            raise CommandError('--json: standard input is not JSON: %s' % e)
        if not isinstance(obj, dict):
            raise CommandError('--json: want a JSON object with %s' % ', '.join(names))
        got = [obj.get(n) for n in names]
    else:
        got = [options.get(n) for n in names]
    missing = [n for n, v in zip(names, got) if not isinstance(v, str) or not v.strip()]
    if missing:
        raise CommandError('missing or empty: %s' % ', '.join(missing))
    return [v.strip() for v in got]
