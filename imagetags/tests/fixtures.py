"""Test fixtures: configuration, real databases, real paste apps and servers.

Databases are real: SQLite always; MariaDB and PostgreSQL where reachable
(``IMAGETAGS_TEST_MYSQL_URL`` / ``IMAGETAGS_TEST_PG_URL`` override the local
defaults), each test getting a database of its own that is dropped after.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import uuid

import fixtures
from oslo_context import context
from paste import deploy
import sqlalchemy as sa
import testtools

from imagetags import app as tags
from imagetags import conf as it_conf
from imagetags.db.sql import migration

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
PASTE_INI = os.path.join(ROOT, 'etc', 'imagetags', 'api-paste.ini')
SERVER_URLS = {
    'mysql': os.environ.get('IMAGETAGS_TEST_MYSQL_URL',
                            'mysql+pymysql://root@127.0.0.1:3306/test'),
    'postgresql': os.environ.get(
        'IMAGETAGS_TEST_PG_URL',
        'postgresql+psycopg2://postgres@127.0.0.1:5432/test'),
}
RABBIT_URL = os.environ.get('IMAGETAGS_TEST_RABBIT_URL',
                            'rabbit://guest:guest@127.0.0.1:5672/')
_unreachable = {}


def unreachable(name, url, port):
    """Why the ``name`` server at ``url`` (``port`` by default) cannot be
    used here, or None."""
    if not url:
        return 'no URL for %s' % name
    parts = urllib.parse.urlsplit(url)
    try:
        socket.create_connection((parts.hostname or '127.0.0.1',
                                  parts.port or port), timeout=2).close()
    except OSError as e:
        return 'no %s at %s (%s)' % (name, url, e)
    return None


def rabbit_missing():
    """Why RabbitMQ cannot be used here, or None."""
    return unreachable('RabbitMQ', RABBIT_URL, 5672)


def notifications(queue, expected):
    """The notifications in RabbitMQ's ``queue`` (oslo.messaging's v2
    envelope opened), oldest first, taken off it. The broker routes them
    after the request has been answered: the queue is read until
    ``expected`` have come (5 s at most), then 0.5 s more for any beyond."""
    found, deadline, done = [], time.monotonic() + 5, None
    with _broker() as c:
        while True:
            with c.channel() as channel:
                try:
                    message = channel.basic_get(queue, no_ack=True)
                except Exception:   # no such queue: nothing published
                    message = None
            now = time.monotonic()
            if message is not None:
                found.append(json.loads(json.loads(message.body)[
                    'oslo.message']))
                continue
            if len(found) >= expected:
                done = done or now + 0.5
                if now > done:
                    return found
            elif now > deadline:
                return found
            time.sleep(0.05)


def drop_queue(queue):
    with _broker() as c:
        with c.channel() as channel:
            channel.queue_delete(queue)


def _broker():
    import kombu
    return kombu.Connection(RABBIT_URL.replace('rabbit://', 'amqp://'))


def server_url(backend, create=''):
    """A new empty database on the server (``create``: more of its CREATE
    DATABASE), or skip (saying why) if none.

    Returns (url, drop) where drop() removes the database.
    """
    if backend in _unreachable:
        raise testtools.TestCase.skipException(_unreachable[backend])
    admin_url = sa.engine.make_url(SERVER_URLS[backend])
    name = 'it_' + uuid.uuid4().hex[:12]
    engine = sa.create_engine(admin_url, isolation_level='AUTOCOMMIT',
                              poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text('CREATE DATABASE %s %s' % (name, create)))
    except sa.exc.OperationalError as e:
        _unreachable[backend] = '%s not reachable at %s: %s' % (
            backend, admin_url.render_as_string(hide_password=True),
            str(e.orig).splitlines()[0])
        raise testtools.TestCase.skipException(_unreachable[backend])

    def drop():
        with engine.connect() as conn:
            if backend == 'postgresql':
                conn.execute(sa.text(
                    'SELECT pg_terminate_backend(pid) FROM pg_stat_activity '
                    "WHERE datname = '%s' AND pid <> pg_backend_pid()" % name))
            conn.execute(sa.text('DROP DATABASE IF EXISTS ' + name))
        engine.dispose()
    return admin_url.set(database=name).render_as_string(
        hide_password=False), drop


class Database(fixtures.Fixture):
    """``backend``: memory, sqlite, mysql, postgresql; ``.url``, ``.options``.

    SQL databases get the schema from the migrations (as ``db sync`` does)
    unless ``schema=False``; a server's is made with ``create`` (see
    ``server_url``).
    """

    def __init__(self, backend, schema=True, create=''):
        super().__init__()
        self.backend = backend
        self.schema = schema
        self.create = create

    def _setUp(self):
        self.url = None
        if self.backend == 'memory':
            self.options = {'imagetags': {'driver': 'memory'}}
            return
        if self.backend == 'sqlite':
            path = self.useFixture(fixtures.TempDir()).path
            self.url = 'sqlite:///%s/imagetags.sqlite' % path
        else:
            self.url, drop = server_url(self.backend, self.create)
            self.addCleanup(drop)
        self.options = sql_options(self.url)
        if self.schema:
            db_sync(self.url)


def sql_options(url):
    """The options of the SQL driver on the database at ``url``."""
    return {'imagetags': {'driver': 'sql'}, 'database': {'connection': url}}


def db_sync(url):
    """The schema from the migrations, as ``imagetags-manage db sync``."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    migration.upgrade(engine)
    engine.dispose()


class ConfigDir(fixtures.Fixture):
    """A config directory: ``imagetags.conf`` from ``options`` (group ->
    {name: value}) next to a copy of ``etc/imagetags/api-paste.ini``
    (or ``paste``, an ini text)."""

    def __init__(self, options, paste=None):
        super().__init__()
        self.options = options
        self.paste = paste

    def _setUp(self):
        self.path = self.useFixture(fixtures.TempDir()).path
        self.conf_file = os.path.join(self.path, 'imagetags.conf')
        self.paste_file = os.path.join(self.path, 'api-paste.ini')
        with open(self.conf_file, 'w') as f:
            for group, values in self.options.items():
                f.write('[%s]\n' % group)
                for name, value in values.items():
                    f.write('%s = %s\n' % (name, value))
        if self.paste is None:
            shutil.copy(PASTE_INI, self.paste_file)
        else:
            with open(self.paste_file, 'w') as f:
                f.write(self.paste)

    def conf(self):
        return it_conf.load([self.conf_file])

    def loadapp(self, name='noauth'):
        return deploy.loadapp('config:' + self.paste_file, name=name,
                              global_conf={'oslo_config_file': self.conf_file})


def merge(*option_dicts):
    merged = {}
    for options in option_dicts:
        for group, values in options.items():
            merged.setdefault(group, {}).update(values)
    return merged


def new_image(driver, tags=(), owner='p-owner', visibility='private'):
    """A new image record holding ``tags``, written as an admin would."""
    image_id = str(uuid.uuid4())
    driver.create_image(image_id, owner, visibility)
    admin = context.RequestContext(project_id=owner, is_admin=True,
                                   overwrite=False)
    for tag in tags:
        driver.add_tag(admin, image_id, tag, -1, lambda image: None)
    return image_id


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class Gunicorn(fixtures.Fixture):
    """gunicorn serving ``imagetags.wsgi:application`` (or ``app``) from a
    ConfigDir on 127.0.0.1; ``.url``. Stopped at cleanup."""

    def __init__(self, config_dir, pipeline='noauth', workers=4,
                 app='imagetags.wsgi:application', extra_args=()):
        super().__init__()
        self.config_dir = config_dir
        self.pipeline = pipeline
        self.workers = workers
        self.app = app
        self.extra_args = list(extra_args)

    def _setUp(self):
        port = free_port()
        self.url = 'http://127.0.0.1:%d' % port
        env = dict(os.environ, IMAGETAGS_CONFIG_DIR=self.config_dir.path,
                   IMAGETAGS_PIPELINE=self.pipeline)
        self.log = os.path.join(self.config_dir.path, 'server.log')
        self.proc = subprocess.Popen(
            self.argv(port), env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        self.addCleanup(self._stop)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError('%s exited: %s' % (
                    type(self).__name__, self._log_text()))
            try:
                socket.create_connection(('127.0.0.1', port), 0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError('%s did not start: %s' % (
            type(self).__name__, self._log_text()))

    def argv(self, port):
        return [sys.executable, '-m', 'gunicorn', '--bind',
                '127.0.0.1:%d' % port, '--workers', str(self.workers),
                '--error-logfile', self.log,
                # The workers' stderr too: imagetags logs there (a 500's
                # traceback).
                '--capture-output', *self.extra_args, self.app]

    def _log_text(self):
        """The log's end, after the first 500's traceback if there is one
        (a database outage fills the log with oslo.db's retry tracebacks)."""
        try:
            with open(self.log) as f:
                text = f.read()
        except OSError:
            return ''
        first = text.find('Unexpected error in ')
        return (text[first:first + 6000] + '\n[...]\n' if first >= 0
                else '') + text[-6000:]

    def _stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Uwsgi(Gunicorn):
    """uwsgi's HTTP router and ``workers`` workers serving ``app`` (a
    ``module:name``) from a ConfigDir on 127.0.0.1; skips the test where
    uwsgi is not installed."""

    def __init__(self, config_dir, pipeline='noauth', workers=2,
                 app='imagetags.wsgi.api:application'):
        super().__init__(config_dir, pipeline, workers, app)
        # Here, not in _setUp: fixtures reports a skip raised in setUp as
        # a SetupError, a failure.
        self.uwsgi = os.path.join(os.path.dirname(sys.executable), 'uwsgi')
        if not os.path.exists(self.uwsgi):
            raise testtools.TestCase.skipException(
                'uwsgi is not installed: pip install uwsgi (it builds with '
                'a C compiler and the Python headers)')

    def argv(self, port):
        return [self.uwsgi, '--http', '127.0.0.1:%d' % port, '--module',
                self.app, '--virtualenv', sys.prefix, '--master',
                '--die-on-term', '--processes', str(self.workers), '--logto',
                self.log]


def tags_app(app):
    """The ``TagsApp`` inside a loaded paste pipeline (its ``.driver``)."""
    seen = app
    while not isinstance(seen, tags.TagsApp):
        for attr in ('api', 'application', 'app'):
            inner = getattr(seen, attr, None)
            if inner is not None:
                seen = inner
                break
        else:
            raise LookupError('no TagsApp in %r' % (app,))
    return seen


def image_states(engine, image_ids):
    """``{image_id: (live tags oldest first, updated_at)}`` for the live
    images among ``image_ids``, in one query (plain SQLAlchemy ``engine``,
    for tests that compare before and after every request)."""
    from imagetags.db.sql import models
    images, tags = models.images, models.image_tags
    query = (sa.select(images.c.id, images.c.updated_at, tags.c.value)
             .select_from(images.outerjoin(tags, sa.and_(
                 tags.c.image_id == images.c.id,
                 tags.c.deleted == sa.false())))
             .where(images.c.id.in_(list(image_ids)),
                    images.c.deleted == sa.false())
             .order_by(tags.c.id))
    states = {}
    with engine.connect() as conn:
        for image_id, updated_at, tag in conn.execute(query):
            tag_list = states.setdefault(image_id, ([], updated_at))[0]
            if tag is not None:
                tag_list.append(tag)
    return states


class Galera(fixtures.Fixture):
    """A MariaDB Galera cluster of ``nodes`` nodes on 127.0.0.1, made for
    the test (the first node bootstraps it, the others join by rsync), with
    a database of imagetags' schema on it: ``.urls`` and ``.options`` (the
    SQL driver's), one per node. Skips
    (from the constructor) where MariaDB's server, the Galera library or
    rsync is missing; ``IMAGETAGS_TEST_GALERA_PROVIDER`` names the library.
    """

    PROVIDERS = ('/usr/lib/galera/libgalera_smm.so',
                 '/usr/lib/libgalera_smm.so',
                 '/usr/lib64/galera-4/libgalera_smm.so')

    def __init__(self, nodes=2):
        super().__init__()
        self.nodes = nodes
        self.server = shutil.which('mariadbd', path=os.pathsep.join(
            [os.environ.get('PATH', ''), '/usr/sbin', '/usr/libexec']))
        self.install = shutil.which('mariadb-install-db')
        provider = os.environ.get('IMAGETAGS_TEST_GALERA_PROVIDER')
        self.provider = provider or next(
            (p for p in self.PROVIDERS if os.path.exists(p)), None)
        missing = [name for name, found in (
            ('mariadbd', self.server), ('mariadb-install-db', self.install),
            ('the Galera library (galera-4)', self.provider),
            ('rsync', shutil.which('rsync'))) if not found]
        if missing:
            raise testtools.TestCase.skipException(
                'no Galera cluster can be started here: %s not found'
                % ', '.join(missing))
        # As root, the servers run as mysql (rsync's daemon, which joins a
        # node, would write as nobody).
        self.user = ['--user=mysql'] if os.geteuid() == 0 else []

    def _setUp(self):
        top = self.useFixture(fixtures.TempDir()).path
        if self.user:
            shutil.chown(top, 'mysql', 'mysql')
        self.urls = []
        gcomm = [free_port() for _ in range(self.nodes)]
        for n in range(self.nodes):
            datadir = os.path.join(top, 'n%d' % n)
            # Its own temporary files: two servers bootstrapping at once in
            # one directory crashed on each other's.
            tmpdir = '--tmpdir=' + os.path.join(top, 'tmp%d' % n)
            for path in (datadir, tmpdir[9:]):
                os.mkdir(path)
                if self.user:
                    shutil.chown(path, 'mysql', 'mysql')
            if n == 0:
                self._run([self.install, '--no-defaults', *self.user,
                           '--datadir=' + datadir, tmpdir,
                           '--auth-root-authentication-method=normal'])
            port = free_port()
            log = os.path.join(top, 'n%d.err' % n)
            proc = subprocess.Popen([
                self.server, '--no-defaults', *self.user,
                '--datadir=' + datadir, tmpdir, '--port=%d' % port,
                '--socket=' + os.path.join(top, 'n%d.sock' % n),
                '--pid-file=' + os.path.join(top, 'n%d.pid' % n),
                '--log-error=' + log, '--bind-address=127.0.0.1',
                '--skip-name-resolve', '--innodb-buffer-pool-size=32M',
                '--binlog-format=ROW', '--innodb-autoinc-lock-mode=2',
                '--wsrep-on=ON', '--wsrep-provider=' + self.provider,
                '--wsrep-cluster-address=gcomm://' + ','.join(
                    '127.0.0.1:%d' % p for p in gcomm if p != gcomm[n]),
                '--wsrep-node-address=127.0.0.1:%d' % gcomm[n],
                '--wsrep-provider-options=base_port=%d;ist.recv_addr='
                '127.0.0.1:%d;gcache.size=16M' % (gcomm[n], free_port()),
                '--wsrep-sst-method=rsync',
                '--wsrep-sst-receive-address=127.0.0.1:%d' % free_port(),
                *(['--wsrep-new-cluster'] if n == 0 else [])],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.addCleanup(self._stop, proc)
            url = 'mysql+pymysql://root@127.0.0.1:%d/' % port
            self._wait_synced(url, proc, log, n + 1)
            self.urls.append(url)
        # The cluster is the fixture's own: one database, named plainly.
        engine = sa.create_engine(self.urls[0], poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            conn.exec_driver_sql('CREATE DATABASE imagetags')
        engine.dispose()
        self.urls = [url + 'imagetags' for url in self.urls]
        db_sync(self.urls[0])
        self.options = [sql_options(url) for url in self.urls]

    @staticmethod
    def _run(argv):
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError('%s failed: %s' % (argv[0], done.stdout +
                                                  done.stderr))

    def _wait_synced(self, url, proc, log, size, timeout=120):
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    with engine.connect() as conn:
                        status = dict(conn.exec_driver_sql(
                            'SHOW STATUS WHERE Variable_name IN '
                            "('wsrep_local_state_comment', "
                            "'wsrep_cluster_size')").all())
                except sa.exc.DBAPIError:
                    status = {}
                if status.get('wsrep_local_state_comment') == 'Synced' and (
                        int(status.get('wsrep_cluster_size', 0)) == size):
                    return
                time.sleep(0.2)
        finally:
            engine.dispose()
        with open(log, errors='replace') as f:
            raise RuntimeError('Galera node %d did not join: %s' % (
                size, f.read()[-4000:]))

    @staticmethod
    def _stop(proc):
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
