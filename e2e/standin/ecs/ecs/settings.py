"""Settings of the ECS stand-in (a test fixture following ECS's container contract; it
is not ECS). Everything the appliance sets comes from the environment: DATABASE_URL,
REDIS_URL, MEMCACHED_URL, SMTP_URL, ECS_USERSWITCHER_ENABLED, and ECS_SETTINGS, Python
source executed at the end of this file."""
import os

from ecs import urls_parse

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # /app/ecs
APP_ROOT = os.path.dirname(PROJECT_DIR)  # /app

with open(os.path.join(PROJECT_DIR, 'VERSION')) as f:
    ECS_VERSION = f.read().strip()

# Directories of the contract, beside the source (volumes in the appliance).
ECS_CA_ROOT = os.path.join(APP_ROOT, 'ecs-ca')
STORAGE_VAULT_DIR = os.path.join(APP_ROOT, 'ecs-storage-vault')
STORAGE_VAULT_GPG_HOME = os.path.join(APP_ROOT, 'ecs-gpg')
ECS_DOWNLOAD_CACHE_DIR = os.path.join(APP_ROOT, 'ecs-cache')

DOMAIN = 'localhost'
ABSOLUTE_URL_PREFIX = 'http://localhost:8000'
ALLOWED_HOSTS = ['localhost', '127.0.0.1']
DEBUG = False
# Public, for tests only; the appliance's ECS_SETTINGS sets a random one.
SECRET_KEY = 'ecs-stand-in-insecure-default-key-for-tests-only'
REGISTRATION_SECRET = PASSWORD_RESET_SECRET = SECRET_KEY
SECURE_PROXY_SSL = False
ECS_REQUIRE_CLIENT_CERTS = False
ETHICS_COMMISSION_UUID = 'ecececececececececececececececec'
PDFAS_SERVICE = ABSOLUTE_URL_PREFIX + '/pdf-as-web/'
SENTRY_DSN = None

ECS_USERSWITCHER_ENABLED = os.environ.get('ECS_USERSWITCHER_ENABLED', '').lower() in ('1', 'true', 'yes', 'on')

INSTALLED_APPS = [
    'django.contrib.contenttypes',
    'django.contrib.auth',
    'ecs.core',
]
MIDDLEWARE = [
    'django.middleware.security.SecurityMiddleware',
    'django.middleware.common.CommonMiddleware',
]
ROOT_URLCONF = 'ecs.urls'
WSGI_APPLICATION = 'ecs.wsgi.application'
TEMPLATES = []
USE_TZ = True
TIME_ZONE = 'Europe/Vienna'
LANGUAGE_CODE = 'en'
DEFAULT_AUTO_FIELD = 'django.db.models.AutoField'
STATIC_URL = '/static/'

DATABASES = {'default': urls_parse.database(os.environ.get('DATABASE_URL', 'postgres:///ecs'))}

if os.environ.get('MEMCACHED_URL'):
    CACHES = {'default': {
        'BACKEND': 'django.core.cache.backends.memcached.PyMemcacheCache',
        'LOCATION': urls_parse.memcached(os.environ['MEMCACHED_URL']),
    }}
else:
    CACHES = {'default': {'BACKEND': 'django.core.cache.backends.locmem.LocMemCache'}}

CELERY_BROKER_URL = os.environ.get('REDIS_URL', 'redis://localhost:6379/0')
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = os.path.join(ECS_DOWNLOAD_CACHE_DIR, 'celerybeat-schedule')
CELERY_BEAT_SCHEDULE = {
    'beat-tick': {'task': 'ecs.core.tasks.beat_tick', 'schedule': 30.0},
}

if os.environ.get('SMTP_URL'):
    globals().update(urls_parse.smtp(os.environ['SMTP_URL']))
    EMAIL_BACKEND = 'django.core.mail.backends.smtp.EmailBackend'
else:
    EMAIL_BACKEND = 'django.core.mail.backends.console.EmailBackend'
EMAIL_BACKEND_UNFILTERED = EMAIL_BACKEND
EMAIL_UNFILTERED_DOMAINS = ()
EMAIL_UNFILTERED_INDIVIDUALS = ()
DEFAULT_FROM_EMAIL = 'noreply@localhost'

# The incoming mail server (manage.py smtpd); ECS_SETTINGS sets listen_addr and domain.
SMTPD_CONFIG = {
    'listen_addr': ('0.0.0.0', 8025),
    'domain': DOMAIN,
    'store_exceptions': False,
}

LOGGING = {
    'version': 1,
    'disable_existing_loggers': False,
    'handlers': {'console': {'class': 'logging.StreamHandler'}},
    'root': {'handlers': ['console'], 'level': 'INFO'},
}

# The appliance's settings, last (ECS: `exec(os.environ['ECS_SETTINGS'])`).
if os.environ.get('ECS_SETTINGS'):
    exec(os.environ['ECS_SETTINGS'])

if SECURE_PROXY_SSL:
    SECURE_PROXY_SSL_HEADER = ('HTTP_X_FORWARDED_PROTO', 'https')
