#!/usr/bin/env python3
"""Check the database named by DATABASE_URL before migrating (ECS's scripts/checkdb.py):

exit 0  Django migrations found (django_migrations exists)
exit 1  old South migrations (south_migrationhistory, no django_migrations)
exit 2  empty database (no tables in it)
exit 3  tables, but neither migration history (unknown content; not in ECS's list)
exit 8  database missing
exit 9  connection error (server unreachable, authentication failed, …)
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import psycopg2  # noqa: E402

from ecs.urls_parse import database  # noqa: E402


def connect(db, name):
    kw = {'dbname': name, 'connect_timeout': 10}
    for k, v in (('user', db['USER']), ('password', db['PASSWORD']), ('host', db['HOST']), ('port', db['PORT'])):
        if v:
            kw[k] = v
    kw.update(db['OPTIONS'])
    return psycopg2.connect(**kw)


def missing(db, e):
    """Whether the connection failed because the database does not exist."""
    if getattr(e, 'pgcode', None) == '3D000' or 'database "%s" does not exist' % db['NAME'] in str(e):
        return True
    # The server's message may be in another language: ask the server itself.
    for other in ('postgres', 'template1'):
        try:
            conn = connect(db, other)
        except psycopg2.Error:
            continue
        try:
            with conn.cursor() as c:
                c.execute('SELECT 1 FROM pg_database WHERE datname = %s', (db['NAME'],))
                return c.fetchone() is None
        finally:
            conn.close()
    return False


def main():
    try:
        db = database(os.environ.get('DATABASE_URL', 'postgres:///ecs'))
    except ValueError as e:
        print('checkdb: %s' % e, file=sys.stderr)
        return 9
    try:
        conn = connect(db, db['NAME'])
    except psycopg2.OperationalError as e:
        if missing(db, e):
            print('checkdb: database %s missing' % db['NAME'], file=sys.stderr)
            return 8
        print('checkdb: cannot connect: %s' % str(e).strip(), file=sys.stderr)
        return 9
    try:
        with conn.cursor() as c:
            # pg_tables, not information_schema: that lists only the tables this role
            # has privileges on, so a database full of another owner's tables looks empty.
            c.execute("SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = 'public'")
            tables = {r[0] for r in c.fetchall()}
    except psycopg2.Error as e:
        print('checkdb: %s' % str(e).strip(), file=sys.stderr)
        return 9
    finally:
        conn.close()
    if 'django_migrations' in tables:
        print('checkdb: Django migrations found')
        return 0
    if 'south_migrationhistory' in tables:
        print('checkdb: old South migrations found')
        return 1
    if not tables:
        print('checkdb: empty database')
        return 2
    print('checkdb: %d tables but no migration history' % len(tables), file=sys.stderr)
    return 3


if __name__ == '__main__':
    sys.exit(main())
