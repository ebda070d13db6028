import asyncio
import concurrent.futures
import email.parser
import email.policy
import logging
import signal

from aiosmtpd.smtp import SMTP
from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections

from ecs.core.models import ReceivedMail

log = logging.getLogger('ecs.smtpd')


def store(sender, recipients, raw):
    close_old_connections()
    headers = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(raw)
    subject = str(headers.get('Subject', '') or '')
    m = ReceivedMail.objects.create(sender=sender or '', recipients=','.join(recipients),
                                    subject=subject, size=len(raw))
    return m.pk


class Handler:
    def __init__(self, loop, pool):
        self.loop, self.pool = loop, pool

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode('utf-8', 'surrogateescape')
        try:
            # Django's ORM is synchronous: it runs on its own thread, not in the loop.
            pk = await self.loop.run_in_executor(self.pool, store, envelope.mail_from, envelope.rcpt_tos, raw)
        except Exception:
            log.exception('storing a mail from %s failed', envelope.mail_from)
            return '451 Requested action aborted: local error in processing'
        log.info('mail %d from %s to %s, %d bytes', pk, envelope.mail_from, ','.join(envelope.rcpt_tos), len(raw))
        return '250 Message accepted for delivery'


class Command(BaseCommand):
    help = "Receive mail on SMTPD_CONFIG['listen_addr'] (0.0.0.0:8025) and store each one in the database."

    def add_arguments(self, parser):
        parser.add_argument('-l', '--loglevel', default='info')

    def handle(self, *args, **options):
        logging.getLogger().setLevel(options['loglevel'].upper())
        if options['loglevel'].lower() != 'debug':
            logging.getLogger('mail.log').setLevel(logging.WARNING)  # aiosmtpd's per-command lines
        host, port = settings.SMTPD_CONFIG['listen_addr']
        domain = settings.SMTPD_CONFIG.get('domain') or settings.DOMAIN
        asyncio.run(self.serve(host, int(port), domain))

    async def serve(self, host, port, domain):
        loop = asyncio.get_running_loop()
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        handler = Handler(loop, pool)
        server = await loop.create_server(lambda: SMTP(handler, hostname=domain), host=host, port=port)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info('smtpd listening on %s:%d as %s', host, port, domain)
        self.stdout.write('smtpd listening on %s:%d' % (host, port))
        self.stdout.flush()
        await stop.wait()
        server.close()
        await server.wait_closed()
        pool.shutdown()
