"""The client-certificate CA in ECS_CA_ROOT, made and used with openssl (as ECS's
ecs/pki does): ca.cert.pem and crl.pem are what nginx on the host verifies client
certificates against; the CA key is private/ca.key.pem (0600)."""
import os
import secrets
import shutil
import subprocess
import tempfile

from django.conf import settings

CONFIG = """\
[ ca ]
default_ca = ecs_ca

[ ecs_ca ]
dir = {root}
database = $dir/index.txt
new_certs_dir = $dir/certs
certificate = $dir/ca.cert.pem
private_key = $dir/private/ca.key.pem
serial = $dir/serial
crlnumber = $dir/crlnumber
default_md = sha256
default_days = 1095
default_crl_days = 3650
policy = policy_any
unique_subject = no
copy_extensions = none
x509_extensions = client_cert
utf8 = yes

[ policy_any ]
commonName = supplied
emailAddress = optional

[ client_cert ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
"""


def root():
    return settings.ECS_CA_ROOT


def path(*parts):
    return os.path.join(root(), *parts)


def _openssl(*args, stdin=None):
    r = subprocess.run(['openssl'] + list(args), input=stdin, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True)
    if r.returncode != 0:
        raise RuntimeError('openssl %s failed: %s' % (args[0], r.stderr.strip()))
    return r.stdout


def _write(p, data, mode=0o644):
    tmp = p + '.new'
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, 'w') as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, p)


def _subject(cn, email=None):
    """An openssl -subj value; the values are data: the characters openssl's parser
    treats specially are escaped."""
    def esc(v):
        if any(ord(ch) < 32 for ch in v):
            raise ValueError('control characters in a certificate name')
        for ch in '\\/+=,':
            v = v.replace(ch, '\\' + ch)
        return v
    s = '/CN=' + esc(cn)
    if email:
        s += '/emailAddress=' + esc(email)
    return s


def bootstrap():
    """Create the CA if it is missing (idempotent). Returns True when it made one."""
    os.makedirs(root(), exist_ok=True)
    _write(path('openssl-ca.cnf'), CONFIG.format(root=root()))
    created = False
    if not os.path.exists(path('ca.cert.pem')):
        os.makedirs(path('private'), mode=0o700, exist_ok=True)
        os.chmod(path('private'), 0o700)
        os.makedirs(path('certs'), exist_ok=True)
        key = path('private', 'ca.key.pem')
        tmp = tempfile.mkdtemp(dir=root())
        try:
            os.chmod(tmp, 0o700)
            _openssl('req', '-x509', '-newkey', 'rsa:3072', '-nodes', '-sha256', '-days', '7300',
                     '-keyout', os.path.join(tmp, 'ca.key.pem'), '-out', os.path.join(tmp, 'ca.cert.pem'),
                     '-subj', _subject('ECS stand-in client CA (%s)' % settings.DOMAIN),
                     '-addext', 'basicConstraints=critical,CA:TRUE',
                     '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
                     '-addext', 'subjectKeyIdentifier=hash')
            os.chmod(os.path.join(tmp, 'ca.key.pem'), 0o600)
            os.replace(os.path.join(tmp, 'ca.key.pem'), key)
            _write(path('index.txt'), '')
            _write(path('serial'), secrets.token_hex(8).upper() + '\n')
            _write(path('crlnumber'), '01\n')
            # The certificate last: its presence says the CA is complete.
            os.replace(os.path.join(tmp, 'ca.cert.pem'), path('ca.cert.pem'))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        created = True
    if created or not os.path.exists(path('crl.pem')):
        gen_crl()
    return created


def gen_crl():
    out = _openssl('ca', '-batch', '-config', path('openssl-ca.cnf'), '-gencrl')
    _write(path('crl.pem'), out)


def issue_pkcs12(email, cn, out, passphrase):
    """Issue a client certificate for (email, cn) and write it with its key as a PKCS#12
    file at out (0600, via a temporary file), encrypted with passphrase. Returns the
    certificate's serial number."""
    if not os.path.exists(path('ca.cert.pem')):
        raise RuntimeError('no CA in %s: run manage.py bootstrap first' % root())
    tmp = tempfile.mkdtemp()
    try:
        os.chmod(tmp, 0o700)
        key, csr, crt = (os.path.join(tmp, n) for n in ('key.pem', 'req.pem', 'cert.pem'))
        _openssl('req', '-new', '-newkey', 'rsa:2048', '-nodes', '-utf8', '-keyout', key, '-out', csr,
                 '-subj', _subject(cn, email))
        _openssl('ca', '-batch', '-config', path('openssl-ca.cnf'), '-notext', '-in', csr, '-out', crt)
        serial = _openssl('x509', '-in', crt, '-noout', '-serial').strip().split('=', 1)[1]
        outtmp = out + '.new'
        _openssl('pkcs12', '-export', '-in', crt, '-inkey', key, '-certfile', path('ca.cert.pem'),
                 '-name', cn, '-passout', 'stdin', '-out', outtmp, stdin=passphrase + '\n')
        os.chmod(outtmp, 0o600)
        os.replace(outtmp, out)
        return serial
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
