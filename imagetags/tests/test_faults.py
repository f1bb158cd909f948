"""Faults (issue 6 item 1): the database server stopped and started again,
SQLite locked by another writer, an image's row locked by another session,
and a policy file that cannot be parsed.

Contract section 3.2: contention is retried, then 503 with ``Retry-After``,
never 500; a database that is down gives 503 and the service recovers by
itself when it returns. Every request must also answer within ``BOUND``
seconds, whatever the database does.

The server tests run PostgreSQL and MariaDB instances of their own
(``initdb`` / ``mariadb-install-db`` into a temporary directory, on a free
loopback port), so that stopping them disturbs no other test; imagetags runs
under gunicorn with two workers and is never restarted. They skip, with the
reason, where the server binaries are missing or cannot be run.
"""
import glob
import http.client
import json
import logging
import os
import pwd
import shutil
import signal
import subprocess
import sys
import threading
import time

import fixtures
import sqlalchemy as sa
import testtools
from testtools import content
import webob

from imagetags import db
from imagetags.tests import fixtures as it_fixtures

BOUND = 10          # seconds any one request may take
RECOVERY = 60       # seconds for the service to answer 204 again
RETRY_AFTER = '7'   # a non-default [imagetags] retry_after, to see it used
OWNER = 'p-owner'
IMAGE = '11111111-1111-4111-8111-111111111111'
LOAD_IMAGE = '22222222-2222-4222-8222-222222222222'
IDENTITY = {'X-Identity-Status': 'Confirmed', 'X-Roles': 'member,reader',
            'X-Project-Id': OWNER, 'Accept': 'application/json'}
UNAVAILABLE = 'The database is unavailable or busy; try again later.'


def _which(*names, dirs=()):
    for name in names:
        for d in dirs:
            for path in sorted(glob.glob(os.path.join(d, name)),
                               reverse=True):
                if os.access(path, os.X_OK):
                    return path
        found = shutil.which(name) or shutil.which(name, path='/usr/sbin')
        if found:
            return found
    return None


class PrivateServer(fixtures.Fixture):
    """A database server of this test's own on 127.0.0.1:``port``.

    ``url``: a database with imagetags' schema. ``stop(sig)`` signals the
    server and waits for it to exit; ``start()`` starts it again on the same
    port and data directory (``wait=False``: without waiting until it
    accepts connections). Skips when the server cannot be run here.
    """

    account = None       # who runs the server when the tests run as root
    backend = None
    graceful = signal.SIGTERM

    def _skip(self, why):
        raise testtools.TestCase.skipException(
            'private %s server: %s' % (self.backend, why))

    def _setUp(self):
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.popen_args = {'cwd': self.dir, 'stdin': subprocess.DEVNULL,
                           'start_new_session': True}
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam(self.account)
            except KeyError:
                self._skip('running as root and there is no %r account to '
                           'run it as' % self.account)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.popen_args.update(user=pw.pw_uid, group=pw.pw_gid)
        self.port = it_fixtures.free_port()
        self.log = os.path.join(self.dir, 'server.log')
        self.proc = None
        self.init()
        self.addCleanup(self._cleanup)
        self.start()
        admin = sa.create_engine(self.admin_url, isolation_level='AUTOCOMMIT',
                                 poolclass=sa.pool.NullPool)
        with admin.connect() as conn:
            conn.execute(sa.text('CREATE DATABASE imagetags'))
        admin.dispose()
        it_fixtures.db_sync(self.url)

    def _run(self, cmd, what):
        try:
            out = subprocess.run(cmd, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, timeout=120,
                                 **self.popen_args)
        except (OSError, subprocess.SubprocessError) as e:
            self._skip('%s failed: %s' % (what, e))
        if out.returncode:
            self._skip('%s failed (%d): %s' % (
                what, out.returncode, out.stdout.decode(errors='replace')
                [-1500:]))

    def start(self, wait=True):
        with open(self.log, 'ab') as log:
            self.proc = subprocess.Popen(self.command(), stdout=log,
                                         stderr=subprocess.STDOUT,
                                         **self.popen_args)
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout=60):
        engine = sa.create_engine(self.admin_url, poolclass=sa.pool.NullPool)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError('%s exited (%s): %s' % (
                        self.backend, self.proc.returncode, self.log_text()))
                try:
                    with engine.connect() as conn:
                        conn.execute(sa.text('SELECT 1'))
                    return
                except sa.exc.DBAPIError:
                    if time.monotonic() > deadline:
                        raise RuntimeError('%s did not start: %s' % (
                            self.backend, self.log_text()))
                    time.sleep(0.1)
        finally:
            engine.dispose()

    def stop(self, sig):
        if sig == signal.SIGKILL:
            # A crash: PostgreSQL's backends outlive a killed postmaster for
            # a moment, and one of them answered a pooled connection.
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, sig)
        else:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log_text(self):
        try:
            with open(self.log, errors='replace') as f:
                return f.read()[-3000:]
        except OSError:
            return ''

    def _cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.stop(self.graceful)


class PrivatePostgres(PrivateServer):
    account = 'postgres'
    backend = 'postgresql'
    graceful = signal.SIGINT   # "fast" shutdown, as pg_ctl stop does

    def init(self):
        dirs = ['/usr/lib/postgresql/*/bin']
        self.initdb = _which('initdb', dirs=dirs)
        self.postgres = _which('postgres', dirs=dirs)
        if not (self.initdb and self.postgres):
            self._skip('initdb/postgres not found')
        self._run([self.initdb, '-D', os.path.join(self.dir, 'data'),
                   '-A', 'trust', '-U', 'postgres', '-E', 'UTF8',
                   '--locale', 'C', '--no-sync'], 'initdb')
        base = 'postgresql+psycopg2://postgres@127.0.0.1:%d/' % self.port
        self.admin_url = base + 'postgres'
        self.url = base + 'imagetags'

    def command(self):
        return [self.postgres, '-D', os.path.join(self.dir, 'data'),
                '-p', str(self.port), '-h', '127.0.0.1', '-k', self.dir,
                '-c', 'fsync=off', '-c', 'shared_buffers=16MB',
                '-c', 'max_connections=40']


class PrivateMariaDB(PrivateServer):
    account = 'mysql'
    backend = 'mysql'
    graceful = signal.SIGTERM
    # Small InnoDB files; commits reach the OS at once (a killed server
    # loses nothing), but are not synced to the disk.
    options = ['--innodb-log-file-size=4M', '--innodb-buffer-pool-size=16M']

    def init(self):
        install = _which('mariadb-install-db', 'mysql_install_db')
        self.mariadbd = _which('mariadbd', 'mysqld')
        if not (install and self.mariadbd):
            self._skip('mariadb-install-db/mariadbd not found')
        self._run([install, '--no-defaults',
                   '--datadir=' + os.path.join(self.dir, 'data'),
                   '--auth-root-authentication-method=normal',
                   '--skip-test-db', *self.options], 'mariadb-install-db')
        base = 'mysql+pymysql://root@127.0.0.1:%d/' % self.port
        self.admin_url = base
        self.url = base + 'imagetags'

    def command(self):
        return [self.mariadbd, '--no-defaults',
                '--datadir=' + os.path.join(self.dir, 'data'),
                '--socket=' + os.path.join(self.dir, 'sock'),
                '--pid-file=' + os.path.join(self.dir, 'pid'),
                '--port=%d' % self.port, '--bind-address=127.0.0.1',
                '--skip-grant-tables', '--skip-name-resolve',
                '--skip-log-bin', '--innodb-flush-log-at-trx-commit=2',
                *self.options]


class Client:
    """One HTTP request per connection to the gunicorn-served imagetags."""

    def __init__(self, test, url):
        self.test = test
        self.host, port = url.rsplit('/', 1)[1].split(':')
        self.port = int(port)

    def __call__(self, method, image_id, tag):
        path = '/v2/images/%s/tags/%s' % (image_id, tag)
        conn = http.client.HTTPConnection(self.host, self.port,
                                          timeout=BOUND)
        start = time.monotonic()
        try:
            conn.request(method, path, headers=IDENTITY)
            resp = conn.getresponse()
            body = resp.read()
        except TimeoutError:
            self.test.fail('%s %s: no answer within %d s'
                           % (method, path, BOUND))
        finally:
            conn.close()
        resp.elapsed = time.monotonic() - start
        resp.body = body
        return resp


class Load(threading.Thread):
    """PUTs a new tag on LOAD_IMAGE, one after the other, until stopped."""

    def __init__(self, client):
        super().__init__(daemon=True)
        self.client = client
        self.results = []      # (tag, status, seconds)
        self.errors = []
        self.done = threading.Event()

    def run(self):
        n = 0
        while not self.done.is_set():
            tag = 'load%d' % n
            n += 1
            try:
                resp = self.client('PUT', LOAD_IMAGE, tag)
                self.results.append((tag, resp.status, resp.elapsed))
            except Exception as e:   # reported by the test
                self.errors.append('%s: %r' % (tag, e))
            time.sleep(0.02)

    def stop(self):
        self.done.set()
        self.join(BOUND * 2)


class ServerStopMixin:
    """imagetags (gunicorn, two workers) starts while the database server
    is down, then the server is stopped twice mid-run: cleanly, then
    killed. imagetags is never restarted."""

    server = None

    def setUp(self):
        super().setUp()
        self.srv = self.useFixture(self.server())
        config = self.useFixture(it_fixtures.ConfigDir({
            'DEFAULT': {'image_tag_quota': -1},
            'imagetags': {'driver': 'sql', 'db_retries': 3,
                          'retry_after': RETRY_AFTER},
            'database': {'connection': self.srv.url}}))
        self.driver = db.load_driver(config.conf())
        self.addCleanup(self.driver.engine.dispose)
        self.driver.create_image(IMAGE, OWNER, 'private')
        self.driver.create_image(LOAD_IMAGE, OWNER, 'private')
        self.driver.engine.dispose()
        self.srv.stop(self.srv.graceful)
        self.gunicorn = self.useFixture(
            it_fixtures.Gunicorn(config, workers=2))
        self.client = Client(self, self.gunicorn.url)
        self.measured = []
        self.addOnException(lambda exc_info: self.addDetail(
            'logs', content.text_content('gunicorn:\n%s\n%s:\n%s' % (
                self.gunicorn._log_text(), self.srv.backend,
                self.srv.log_text()))))

    def tags(self, image_id=IMAGE):
        return self.driver.show_image(image_id)['tags']

    def assert_answer(self, status, method, tag):
        resp = self.client(method, IMAGE, tag)
        detail = '%s %s: %s %r (%.2f s)' % (method, tag, resp.status,
                                            resp.body, resp.elapsed)
        self.assertEqual(status, resp.status, detail)
        self.assertLess(resp.elapsed, BOUND, detail)
        return resp

    def assert_unavailable(self, method, tag):
        resp = self.assert_answer(503, method, tag)
        self.assertEqual(RETRY_AFTER, resp.getheader('Retry-After'))
        self.assertIn(UNAVAILABLE, json.loads(resp.body)['message'])
        self.assertTrue(resp.getheader('X-Openstack-Request-Id'))
        return resp.elapsed

    def down_then_up(self, tag):
        """503 while the server is down; started again, 503 until it
        accepts connections, then 204 for ``PUT tag``."""
        took = []
        for _ in range(3):
            took.append(self.assert_unavailable('PUT', 'while-down'))
            took.append(self.assert_unavailable('DELETE', 'a'))
        self.srv.start(wait=False)
        started = time.monotonic()
        deadline = started + RECOVERY
        while True:
            resp = self.client('PUT', IMAGE, tag)
            self.assertIn(resp.status, (204, 503), resp.body)
            self.assertLess(resp.elapsed, BOUND)
            if resp.status == 204:
                self.measured.append(
                    '%s: 503 in %.2f-%.2f s; 204 %.2f s after the restart'
                    % (tag, min(took), max(took),
                       time.monotonic() - started))
                return
            self.assertLess(time.monotonic(), deadline,
                            'not back %d s after the restart' % RECOVERY)
            time.sleep(0.1)

    def test_stopped_and_started_again(self):
        # Started while the database is down: every worker boots, answers
        # 503, and recovers when the server comes.
        load = Load(self.client)
        load.start()
        self.addCleanup(load.stop)
        self.down_then_up('a')
        self.assert_answer(204, 'PUT', 'b')
        expected = ['a', 'b']
        self.assertEqual(expected, self.tags())
        for how, sig in (('stopped', self.srv.graceful),
                         ('killed', signal.SIGKILL)):
            self.srv.stop(sig)
            self.down_then_up('after-' + how)
            expected.append('after-' + how)
            self.assertEqual(expected, self.tags())
            # Every gunicorn worker answers correctly again.
            for n in range(4):
                self.assert_answer(204, 'PUT', 'x%d' % n)
                self.assert_answer(204, 'PUT', 'x%d' % n)
                self.assert_answer(204, 'DELETE', 'x%d' % n)
                self.assert_answer(404, 'DELETE', 'x%d' % n)
            self.assert_answer(204, 'DELETE', 'a')
            self.assert_answer(204, 'PUT', 'a')
            expected.remove('a')
            expected.append('a')
            self.assertEqual(expected, self.tags())
        time.sleep(0.5)
        load.stop()
        self.assertEqual([], load.errors)
        statuses = {status for _, status, _ in load.results}
        self.assertEqual({204, 503}, statuses, load.results)
        self.assertLess(max(s for _, _, s in load.results), BOUND)
        acked = {tag for tag, status, _ in load.results if status == 204}
        tried = {tag for tag, _, _ in load.results}
        final = set(self.tags(LOAD_IMAGE))
        self.assertLessEqual(acked, final)
        self.assertLessEqual(final, tried)
        # No worker died or was replaced on the way.
        with open(self.gunicorn.log) as f:
            self.assertEqual(2, f.read().count('Booting worker'))
        took = [s for _, status, s in load.results if status == 503]
        self.measured.append(
            '%d requests under load: %d x 503 (%.2f-%.2f s), %d x 204; '
            '%d tags stored' % (len(load.results), len(took), min(took),
                                max(took), len(acked), len(final)))
        self.addDetail('measured', content.text_content(
            '\n'.join(self.measured)))


class PostgresStopTest(ServerStopMixin, testtools.TestCase):
    server = PrivatePostgres


class MariaDBStopTest(ServerStopMixin, testtools.TestCase):
    server = PrivateMariaDB


class InProcess:
    """The real paste pipeline in-process, and its driver."""

    def load(self, options):
        self.config = self.useFixture(it_fixtures.ConfigDir(options))
        self.app = self.config.loadapp('noauth')
        self.driver = it_fixtures.tags_app(self.app).driver

    def call(self, method, tag, image_id=IMAGE, headers=IDENTITY):
        req = webob.Request.blank('/v2/images/%s/tags/%s' % (image_id, tag),
                                  method=method, headers=headers)
        start = time.monotonic()
        resp = req.get_response(self.app)
        resp.elapsed = time.monotonic() - start
        return resp


class LockedMixin(InProcess):
    """Another session holds the lock a change needs: each attempt waits
    ``WAIT`` seconds for it, and past ``RETRIES`` the request answers 503,
    within BOUND seconds. ``options(database)``, ``lock()`` and
    ``release(holder)``: the subclass's."""

    def setUp(self):
        super().setUp()
        database = self.useFixture(it_fixtures.Database(self.backend))
        self.load(it_fixtures.merge(database.options, self.options(database), {
            'imagetags': {'db_retries': self.RETRIES,
                          'retry_after': RETRY_AFTER}}))
        self.driver.create_image(IMAGE, OWNER, 'private')
        self.attempts = 0

        def count(sql):
            # Each attempt starts with the read of the image.
            if 'imagetags_read' in sql or sql.startswith('SELECT images.id'):
                self.attempts += 1
        self.driver.on_sql = count
        self.assertEqual(204, self.call('PUT', 'a').status_int)

    def answered(self, method, tag):
        """The answer, which must come within BOUND seconds (MariaDB would
        wait 50 s per attempt, PostgreSQL for ever)."""
        answers = []
        caller = threading.Thread(
            target=lambda: answers.append(self.call(method, tag)),
            daemon=True)
        caller.start()
        caller.join(BOUND)
        self.assertEqual(1, len(answers), 'no answer within %s s' % BOUND)
        return answers[0]

    def test_locked_past_the_retries_is_503_then_recovers(self):
        holder = self.lock()
        for method, tag in (('PUT', 'b'), ('DELETE', 'a')):
            self.attempts = 0
            resp = self.answered(method, tag)
            self.assertEqual(503, resp.status_int, resp.body)
            self.assertEqual(RETRY_AFTER, resp.headers['Retry-After'])
            self.assertIn(UNAVAILABLE, resp.json['message'])
            self.assertEqual(self.RETRIES + 1, self.attempts)
            self.assertGreaterEqual(resp.elapsed,
                                    self.WAIT * (self.RETRIES + 1) - 0.1)
        # What changes nothing is answered from a read, which the lock
        # does not hold up (SQLite: WAL).
        self.attempts = 0
        self.assertEqual(204, self.answered('PUT', 'a').status_int)
        self.assertEqual(1, self.attempts)
        self.release(holder)
        self.assertEqual(['a'], self.driver.show_image(IMAGE)['tags'])
        self.assertEqual(204, self.call('PUT', 'b').status_int)
        self.assertEqual(204, self.call('DELETE', 'a').status_int)
        self.assertEqual(['b'], self.driver.show_image(IMAGE)['tags'])

    def test_lock_released_during_the_retries(self):
        self.load(it_fixtures.merge(self.config.options, {
            'imagetags': {'db_retries': 10}}))
        holder = self.lock()
        timer = threading.Timer(0.5, self.release, [holder])
        timer.start()
        self.addCleanup(timer.cancel)
        resp = self.answered('PUT', 'b')
        self.assertEqual(204, resp.status_int, resp.body)
        self.assertGreaterEqual(resp.elapsed, 0.4)
        self.assertEqual(['a', 'b'], self.driver.show_image(IMAGE)['tags'])


class SQLiteLockedTest(LockedMixin, testtools.TestCase):
    """Another process holds SQLite's write lock (``BEGIN EXCLUSIVE``)."""

    backend = 'sqlite'
    RETRIES = 2
    WAIT = 0.2

    def options(self, database):
        self.path = database.url[len('sqlite:///'):]
        # The URL's timeout wins over lock_timeout (whole seconds) and
        # keeps these tests short (see test_the_busy_wait_is_lock_timeout).
        return {'database': {'connection': database.url + '?timeout=%s' % (
            self.WAIT)}}

    def lock(self):
        """A process holding the database's write lock until released."""
        proc = subprocess.Popen(
            [sys.executable, '-c',
             'import sqlite3, sys\n'
             'c = sqlite3.connect(sys.argv[1], isolation_level=None)\n'
             'c.execute("BEGIN EXCLUSIVE")\n'
             'print("locked", flush=True)\n'
             'sys.stdin.read()\n'
             'c.execute("ROLLBACK")\n', self.path],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.addCleanup(proc.wait, 30)
        self.addCleanup(proc.stdin.close)
        self.assertEqual('locked\n', proc.stdout.readline())
        return proc

    def release(self, proc):
        proc.stdin.close()
        self.assertEqual(0, proc.wait(30))

    def test_the_busy_wait_is_lock_timeout(self):
        """Without a timeout in the URL, SQLite waits lock_timeout."""
        self.load(it_fixtures.merge(self.config.options, {
            'database': {'connection': 'sqlite:///' + self.path},
            'imagetags': {'db_retries': 0, 'lock_timeout': 2}}))
        self.lock()
        resp = self.answered('PUT', 'b')
        self.assertEqual(503, resp.status_int, resp.body)
        self.assertGreaterEqual(resp.elapsed, 1.9)


class RowLockedMixin(LockedMixin):
    """Another session holds the image's row lock (a stuck transaction, a
    database shell)."""

    RETRIES = 1
    WAIT = 1

    def options(self, database):
        self.engine = sa.create_engine(database.url,
                                       poolclass=sa.pool.NullPool)
        self.addCleanup(self.engine.dispose)
        return {'imagetags': {'lock_timeout': self.WAIT}}

    def lock(self):
        """A transaction holding the image's row lock until rolled back."""
        conn = self.engine.connect()
        self.addCleanup(conn.close)
        holder = conn.begin()
        self.addCleanup(holder.rollback)
        conn.execute(sa.text('SELECT id FROM images WHERE id = :id '
                             'FOR UPDATE'), {'id': IMAGE})
        return holder

    def release(self, holder):
        holder.rollback()


class PostgresRowLockedTest(RowLockedMixin, testtools.TestCase):
    backend = 'postgresql'


class MariaDBRowLockedTest(RowLockedMixin, testtools.TestCase):
    backend = 'mysql'


class PolicyFileTest(InProcess, testtools.TestCase):
    """``[oslo_policy] policy_file`` that cannot be parsed."""

    BROKEN = {
        'bad YAML': 'delete_image_tag: "role:admin" : : [\n',
        'a list': '- delete_image_tag\n- role:admin\n',
        'a string': 'role:admin\n',
        'a rule that is a number': 'delete_image_tag: 5\n',
        'a rule that is a list of numbers': 'delete_image_tag: [1, 2]\n',
        'not UTF-8': b'delete_image_tag: "\xff"\n',
        # oslo.policy would fall back to "default" (allow) for these.
        'an undefined rule': 'delete_image_tag: "rule:typo"\n',
        'an undefined rule further down': 'modify_image: "not rule:typo"\n',
        'a cycle': 'modify_image: "rule:m2"\nm2: "rule:modify_image"\n',
    }
    ADMIN_ONLY = 'delete_image_tag: "rule:context_is_admin"\n'

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.policy = os.path.join(self.dir, 'policy.yaml')
        self.mtime = time.time()
        # Look at the file on every check, not once a second.
        self.options = {'imagetags': {'driver': 'memory',
                                      'policy_reload_interval': 0},
                        'oslo_policy': {'policy_file': self.policy}}

    def write(self, text):
        mode = 'wb' if isinstance(text, bytes) else 'w'
        with open(self.policy, mode) as f:
            f.write(text)
        # oslo.policy re-reads the file when its mtime moves forward.
        self.mtime += 10
        os.utime(self.policy, (self.mtime, self.mtime))

    def test_unparseable_at_start_up(self):
        for name, text in self.BROKEN.items():
            self.write(text)
            config = self.useFixture(it_fixtures.ConfigDir(self.options))
            e = self.assertRaises(ValueError, config.loadapp)
            self.assertIn('The policy file %s cannot be used' % self.policy,
                          str(e), name)

    def test_other_rules_of_a_glance_policy_file_are_not_ours(self):
        # A Glance policy.yaml names rules Glance defines in its code.
        self.write('add_image: "rule:glance_only"\n'
                   'delete_image: "rule:x and rule:y"\n' + self.ADMIN_ONLY)
        self.load(self.options)
        self.driver.create_image(IMAGE, OWNER, 'private')
        self.assertEqual(204, self.call('PUT', 'x').status_int)
        self.assertEqual(403, self.call('DELETE', 'x').status_int)

    def test_changes_are_seen_within_the_reload_interval(self):
        self.write(self.ADMIN_ONLY)
        self.load(it_fixtures.merge(self.options, {
            'imagetags': {'policy_reload_interval': 0.5}}))
        self.driver.create_image(IMAGE, OWNER, 'private')
        self.assertEqual(204, self.call('PUT', 'x').status_int)
        self.assertEqual(403, self.call('DELETE', 'x').status_int)
        self.write('delete_image_tag: "rule:modify_image"\n')
        time.sleep(0.6)
        self.assertEqual(204, self.call('DELETE', 'x').status_int)

    def test_broken_while_running_keeps_the_rules_in_force(self):
        self.write(self.ADMIN_ONLY)
        self.load(self.options)
        self.driver.create_image(IMAGE, OWNER, 'private')
        self.assertEqual(204, self.call('PUT', 'x').status_int)
        self.assertEqual(403, self.call('DELETE', 'x').status_int)
        log = self.useFixture(fixtures.FakeLogger(level=logging.ERROR))
        for name, text in self.BROKEN.items():
            self.write(text)
            for _ in range(2):
                resp = self.call('DELETE', 'x')
                self.assertEqual(403, resp.status_int, (name, resp.body))
                self.assertEqual(204, self.call('PUT', 'y').status_int, name)
            self.assertIn('The policy file %s cannot be used; the rules '
                          'loaded before stay in force' % self.policy,
                          log.output, name)
            self.assertEqual(['x', 'y'],
                             self.driver.show_image(IMAGE)['tags'], name)
        # A valid file again: its rules take effect.
        self.write('add_image_tag: "!"\n')
        self.assertEqual(204, self.call('DELETE', 'y').status_int)
        self.assertEqual(403, self.call('PUT', 'y').status_int)
        self.assertEqual(['x'], self.driver.show_image(IMAGE)['tags'])

    def test_removed_while_running_gives_the_defaults(self):
        # oslo.policy reads a file that went away as empty: the in-code
        # defaults (Glance's), never anything more open than them.
        self.write(self.ADMIN_ONLY)
        self.load(self.options)
        self.driver.create_image(IMAGE, OWNER, 'private')
        self.assertEqual(204, self.call('PUT', 'x').status_int)
        self.assertEqual(403, self.call('DELETE', 'x').status_int)
        os.unlink(self.policy)
        self.assertEqual(204, self.call('DELETE', 'x').status_int)
        other = dict(IDENTITY, **{'X-Project-Id': 'p-other'})
        self.assertEqual(404, self.call('PUT', 'x', headers=other).status_int)
