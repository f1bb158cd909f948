"""Fixtures that run a real Glance 33 under gunicorn on 127.0.0.1.

``GlanceDatabase`` makes an empty Glance schema (``glance-manage db_sync``)
once and hands out copies of it: SQLite files, or PostgreSQL databases made
from a template; MariaDB databases are each synced. ``GlanceServer`` writes
a ``glance-api.conf`` and a paste file into a fixtures.TempDir, starts
``gunicorn glance.wsgi.api:application`` on a socket it bound itself (so
the port is free and known before start), waits
until ``GET /versions`` answers, and always stops the server again.

Identity comes from headers (``X-Identity-Status: Confirmed``, ``X-Roles``,
``X-Project-Id``, ``X-User-Id``): the pipeline is Glance's keystone one minus
``authtoken``. The ``imagetags`` flavor adds the imagetags filter right after
Glance's ``context`` filter, configured from the same ``glance-api.conf``
(``oslo_config_file``), so it uses Glance's database, quota and anonymous
access settings.
"""
import ctypes
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import uuid

import fixtures
import sqlalchemy

from imagetags.tests import fixtures as it_fixtures

STOCK = 'headers'
IMAGETAGS = 'imagetags'

PASTE_INI = """\
[composite:glance-api-{stock}]
paste.composite_factory = glance.api:root_app_factory
/: api
/healthcheck: healthcheck

[composite:glance-api-{imagetags}]
paste.composite_factory = glance.api:root_app_factory
/: api
/healthcheck: healthcheck

[composite:api]
paste.composite_factory = glance.api:pipeline_factory
{stock} = cors http_proxy_to_wsgi versionnegotiation osprofiler context rootapp
{imagetags} = cors http_proxy_to_wsgi versionnegotiation osprofiler context \
imagetags rootapp

[composite:rootapp]
paste.composite_factory = glance.api:root_app_factory
/: apiversions
/v2: apiv2app

[app:apiversions]
paste.app_factory = glance.api.versions:create_resource

[app:apiv2app]
paste.app_factory = glance.api.v2.router:API.factory

[app:healthcheck]
paste.app_factory = oslo_middleware:Healthcheck.app_factory
backends = disable_by_file
disable_by_file_path = {base}/healthcheck_disable

[filter:versionnegotiation]
paste.filter_factory = \
glance.api.middleware.version_negotiation:VersionNegotiationFilter.factory

[filter:context]
paste.filter_factory = glance.api.middleware.context:ContextMiddleware.factory

[filter:osprofiler]
paste.filter_factory = osprofiler.web:WsgiMiddleware.factory

[filter:cors]
paste.filter_factory = oslo_middleware.cors:filter_factory
oslo_config_project = glance
oslo_config_program = glance-api

[filter:http_proxy_to_wsgi]
paste.filter_factory = oslo_middleware:HTTPProxyToWSGI.factory

[filter:imagetags]
use = egg:imagetags#imagetags
oslo_config_file = {base}/glance-api.conf
"""

GLANCE_CONF = """\
[DEFAULT]
enabled_backends = fs:file
lock_path = {base}/locks
image_tag_quota = {quota}
allow_anonymous_access = {anonymous}
log_file = {base}/glance-api.log
debug = false

[database]
connection = {connection}

[glance_store]
default_backend = fs

[fs]
filesystem_store_datadir = {base}/images

[os_glance_staging_store]
filesystem_store_datadir = {base}/staging

[os_glance_tasks_store]
filesystem_store_datadir = {base}/tasks

[paste_deploy]
config_file = {base}/glance-api-paste.ini
flavor = {flavor}
"""


def glance_missing():
    """Why Glance tests cannot run here, or None."""
    try:
        import glance.wsgi  # noqa: F401
        import gunicorn  # noqa: F401
    except ImportError as e:
        return ('Glance 33 is not installed (%s); these tests run in '
                '"tox -e glance"' % e)
    return None


_SERVERS = {'postgresql': ('PostgreSQL', 5432),
            'mysql': ('MariaDB/MySQL', 3306)}


def backend_missing(backend):
    """Why the variant on ``backend`` cannot run, or None (SQLite)."""
    if backend not in _SERVERS:
        return None
    name, port = _SERVERS[backend]
    return it_fixtures.unreachable(name, it_fixtures.SERVER_URLS[backend],
                                   port)


def _die_with_parent():
    """In the child: SIGTERM when the test process dies (Linux), so that
    a killed test worker leaves no Glance behind."""
    try:
        ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGTERM)
    except OSError:
        pass


def _run(argv, **kwargs):
    proc = subprocess.run(argv, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, **kwargs)
    if proc.returncode:
        raise RuntimeError('%s failed (%d):\n%s' % (
            ' '.join(argv), proc.returncode, proc.stdout[-4000:]))
    return proc.stdout


def _write_conf(base, connection, flavor=STOCK, quota=128, anonymous=False,
                extra=''):
    """``extra``: more of glance-api.conf, appended."""
    for sub in ('locks', 'images', 'staging', 'tasks'):
        os.makedirs(os.path.join(base, sub), exist_ok=True)
    with open(os.path.join(base, 'glance-api.conf'), 'w') as f:
        f.write(GLANCE_CONF.format(base=base, connection=connection,
                                   flavor=flavor, quota=quota,
                                   anonymous=str(anonymous).lower()) + extra)
    with open(os.path.join(base, 'glance-api-paste.ini'), 'w') as f:
        f.write(PASTE_INI.format(base=base, stock=STOCK,
                                 imagetags=IMAGETAGS))
    return os.path.join(base, 'glance-api.conf')


def db_sync(base, connection):
    """Glance's own schema in ``connection`` (``glance-manage db_sync``)."""
    conf = _write_conf(base, connection)
    _run([sys.executable, '-m', 'glance.cmd.manage', '--config-file', conf,
          'db_sync'])


class GlanceDatabase(fixtures.Fixture):
    """Copies of one freshly synced Glance schema: ``new()`` -> a URL.

    ``backend`` is ``sqlite``, ``postgresql`` or ``mysql``; server
    databases are named ``it_glance_<random>_*`` and dropped at clean-up
    (MariaDB's, which has no templates, each synced anew: 3 s).
    """

    def __init__(self, backend='sqlite'):
        super().__init__()
        self.backend = backend

    def _setUp(self):
        self.base = self.useFixture(fixtures.TempDir()).path
        self.prefix = 'it_glance_%s' % uuid.uuid4().hex[:10]
        self.count = 0
        if self.backend == 'sqlite':
            self.template = os.path.join(self.base, 'template.sqlite')
            db_sync(os.path.join(self.base, 'sync'),
                    'sqlite:///' + self.template)
        elif self.backend == 'mysql':
            self.admin_url = it_fixtures.SERVER_URLS['mysql']
        else:
            self.admin_url = it_fixtures.SERVER_URLS['postgresql']
            self.template = self.prefix + '_template'
            self._pg('CREATE DATABASE %s' % self.template)
            self.addCleanup(self._pg, 'DROP DATABASE IF EXISTS %s'
                            % self.template)
            db_sync(os.path.join(self.base, 'sync'),
                    self._url(self.template))

    def _url(self, name):
        parts = urllib.parse.urlsplit(self.admin_url)
        return urllib.parse.urlunsplit(parts._replace(path='/' + name))

    def _mysql(self, sql):
        engine = sqlalchemy.create_engine(self.admin_url,
                                          poolclass=sqlalchemy.pool.NullPool)
        with engine.connect() as conn:
            conn.exec_driver_sql(sql)
        engine.dispose()

    def _pg(self, sql):
        import psycopg2
        parts = urllib.parse.urlsplit(self.admin_url)
        conn = psycopg2.connect(
            host=parts.hostname, port=parts.port or 5432,
            user=parts.username, password=parts.password,
            dbname=parts.path.lstrip('/') or 'postgres')
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()

    def new(self):
        """A new database holding the empty schema: its connection URL."""
        self.count += 1
        if self.backend == 'sqlite':
            path = os.path.join(self.base, 'glance-%d.sqlite' % self.count)
            shutil.copyfile(self.template, path)
            return 'sqlite:///' + path
        name = '%s_%d' % (self.prefix, self.count)
        if self.backend == 'mysql':
            self._mysql('CREATE DATABASE %s' % name)
            self.addCleanup(self._mysql, 'DROP DATABASE IF EXISTS %s' % name)
            db_sync(os.path.join(self.base, 'sync'), self._url(name))
            return self._url(name)
        self._pg('CREATE DATABASE %s TEMPLATE %s' % (name, self.template))
        self.addCleanup(self._pg, 'DROP DATABASE IF EXISTS %s WITH (FORCE)'
                        % name)
        return self._url(name)


class GlanceServer(fixtures.Fixture):
    """Glance 33 served by gunicorn on 127.0.0.1; ``url`` once started.

    ``flavor`` is ``STOCK`` (Glance alone) or ``IMAGETAGS`` (with the
    imagetags filter after ``context``).
    """

    START_TIMEOUT = 90

    def __init__(self, connection, flavor=STOCK, quota=128, anonymous=False,
                 workers=1, wait=True, extra_conf=''):
        super().__init__()
        self.extra_conf = extra_conf
        self.connection = connection
        self.flavor = flavor
        self.quota = quota
        self.anonymous = anonymous
        self.workers = workers
        self.wait = wait

    def _setUp(self):
        self.base = self.useFixture(fixtures.TempDir()).path
        _write_conf(self.base, self.connection, self.flavor, self.quota,
                    self.anonymous, self.extra_conf)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(sock.close)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(('127.0.0.1', 0))
        sock.listen(64)
        self.host, self.port = sock.getsockname()
        self.url = 'http://%s:%d' % (self.host, self.port)
        self.log_path = os.path.join(self.base, 'gunicorn.log')
        env = dict(os.environ, OS_GLANCE_CONFIG_DIR=self.base)
        with open(self.log_path, 'wb') as log:
            self.proc = subprocess.Popen(
                [sys.executable, '-m', 'gunicorn',
                 '--bind', 'fd://%d' % sock.fileno(),
                 '--workers', str(self.workers), '--timeout', '60',
                 '--graceful-timeout', '5', '--log-level', 'warning',
                 'glance.wsgi.api:application'],
                stdout=log, stderr=subprocess.STDOUT, env=env,
                pass_fds=(sock.fileno(),), start_new_session=True,
                preexec_fn=_die_with_parent)
        self.addCleanup(self._stop)
        if self.wait:
            self.wait_ready()

    def wait_ready(self):
        """Block until Glance answers (for servers made with wait=False,
        so that several start at once)."""
        deadline = time.monotonic() + self.START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError('gunicorn exited with %s:\n%s' % (
                    self.proc.returncode, self.log()))
            try:
                status = self.request('GET', '/versions')[0]
                if status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError('Glance did not answer in %ds:\n%s' % (
                    self.START_TIMEOUT, self.log()))
            time.sleep(0.2)

    def log(self):
        """The tails of gunicorn's and Glance's logs."""
        out = []
        for name in ('gunicorn.log', 'glance-api.log'):
            try:
                with open(os.path.join(self.base, name),
                          errors='replace') as f:
                    out.append('== %s ==\n%s' % (name, f.read()[-4000:]))
            except OSError:
                pass
        return '\n'.join(out)

    def stop_soon(self):
        """Ask gunicorn for a quick shutdown without waiting for it."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)

    def _stop(self):
        self.stop_soon()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(15)

    def request(self, method, path, headers=None, body=None):
        """One request with ``path`` sent exactly as given.

        Returns (status, headers dict with lower-case names, body bytes).
        """
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            headers = dict(headers or {})
            if body is not None:
                if not isinstance(body, bytes):
                    body = json.dumps(body).encode()
                    headers.setdefault('Content-Type', 'application/json')
                headers['Content-Length'] = str(len(body))
            for name, value in headers.items():
                conn.putheader(name, value)
            conn.endheaders(body)
            resp = conn.getresponse()
            data = resp.read()
            return (resp.status,
                    {k.lower(): v for k, v in resp.getheaders()}, data)
        finally:
            conn.close()
