"""The service URLs of the container contract, parsed without Django (scripts/checkdb.py
uses this too): DATABASE_URL, MEMCACHED_URL, SMTP_URL."""
from urllib.parse import parse_qsl, unquote, urlsplit


def database(url):
    """postgres://USER:PASSWORD@HOST:PORT/NAME → Django DATABASES entry.

    User and password are percent-decoded; an empty host means the local socket; a host
    that is percent-encoded path (%2Frun%2Fpostgresql) is a socket directory; query
    parameters (sslmode=…) become OPTIONS."""
    u = urlsplit(url)
    if u.scheme not in ('postgres', 'postgresql', 'pgsql'):
        raise ValueError('DATABASE_URL: want postgres://USER:PASSWORD@HOST:PORT/NAME, got scheme %r' % u.scheme)
    netloc = u.netloc
    userinfo, _, hostport = netloc.rpartition('@')
    user, _, password = userinfo.partition(':')
    host, port = hostport, ''
    if hostport.startswith('['):  # [IPv6]:port
        end = hostport.find(']')
        host, port = hostport[1:end], hostport[end + 2:]
    elif ':' in hostport:
        host, _, port = hostport.rpartition(':')
    if port and not port.isdigit():
        raise ValueError('DATABASE_URL: port %r is not a number' % port)
    name = unquote(u.path[1:]) if u.path.startswith('/') else unquote(u.path)
    if not name:
        raise ValueError('DATABASE_URL: no database name')
    return {
        'ENGINE': 'django.db.backends.postgresql',
        'NAME': name,
        'USER': unquote(user),
        'PASSWORD': unquote(password),
        'HOST': unquote(host),
        'PORT': port,
        'OPTIONS': dict(parse_qsl(u.query)),
        'ATOMIC_REQUESTS': True,
    }


def memcached(url):
    """memcached://HOST:PORT → the cache location HOST:PORT (the part after //)."""
    u = urlsplit(url)
    if u.scheme != 'memcached' or not u.netloc:
        raise ValueError('MEMCACHED_URL: want memcached://HOST:PORT, got %r' % url)
    return u.netloc


def smtp(url):
    """smtp://[user:pass@]HOST[:PORT] → Django's EMAIL_* settings (smtps:// for TLS)."""
    u = urlsplit(url)
    if u.scheme not in ('smtp', 'smtps') or not u.hostname:
        raise ValueError('SMTP_URL: want smtp://[user:pass@]HOST[:PORT], got scheme %r' % u.scheme)
    return {
        'EMAIL_HOST': u.hostname,
        'EMAIL_PORT': u.port or (465 if u.scheme == 'smtps' else 25),
        'EMAIL_HOST_USER': unquote(u.username or ''),
        'EMAIL_HOST_PASSWORD': unquote(u.password or ''),
        'EMAIL_USE_SSL': u.scheme == 'smtps',
    }
