"""In-process cost of one request through the whole ``noauth`` Paste pipeline.

The app is loaded with ``paste.deploy.loadapp`` exactly as deployed; requests
are made with ``webob.Request.blank`` beforehand, so only the app's own work
is timed: wall time (median, p99) and this process's CPU time (mean) per
request, and SQL statements and other database calls per request (see
``SQLCounter``).
Kinds, interleaved on 16 images round-robin: ``PUT`` of a new tag,
``DELETE`` of it, ``DELETE`` of an absent tag, ``PUT`` of a present tag;
and a ``DELETE`` of an absent tag on an image holding 128 tags (Glance's
default quota).
"""
import gc
import statistics
import time

from paste import deploy
import sqlalchemy as sa
import webob

from imagetags import context
from imagetags.db import sql as sql_driver
from imagetags.tests.bench import backends

KINDS = ('put', 'delete', 'delete_absent', 'put_present',
         'delete_absent_tagged')
IMAGES = 16
TAGGED, TAGS = 'inproc-tagged', 128


class SQLCounter:
    """Statements and other database calls, while active.

    ``statements``: SQL statements sent, as the SQL driver reports them
    (``on_sql``) and through any SQLAlchemy engine (``before_cursor_execute``;
    the driver's ``BEGIN`` on SQLite included); ``trips``: the cursor
    executions that carried them (PostgreSQL's and MySQL's changes send
    several statements at once), but for those that carried a commit.
    ``calls``: commits and rollbacks (alone or carried), and what the
    engine's dialect sends besides statements (pings, the pool's
    reset-on-return), each a round trip on MariaDB and PostgreSQL (the
    driver's PostgreSQL connections are in autocommit: it sends none).
    ``transactions``: ``begin`` events.
    """

    WRAPPED = ('do_ping', 'do_commit', 'do_rollback')

    def __init__(self, driver=None):
        self.driver = driver
        self.engine = driver and driver.engine
        self.statements = 0
        self.trips = 0
        self.transactions = 0
        self.calls = 0
        self.by_call = dict.fromkeys(self.WRAPPED, 0)
        self.log = []
        self.keep = 0

    def _stmt(self, conn, cursor, statement, parameters, context,
              executemany):
        self._sql(statement)

    def _sql(self, statement):
        parts, ends = sql_driver.statements(
            statement, self.driver and self.driver.prepared)
        # A commit sent alone or with statements is one round trip (MySQL's
        # changes carry theirs): counted in calls.
        if not ends:
            self.trips += 1
        for i, part in enumerate(parts):
            self.statements += 1
            if self.keep:
                # A statement sent in the round trip of the one before: "+ ".
                self.log.append(('+ ' if i else '') + ' '.join(
                    part.split())[:160])
        for end in ends:
            name = 'do_' + end.lower()
            self.calls += 1
            self.by_call[name] += 1
            if self.keep:
                self.log.append('(%s%s)' % (name, ' in the trip'
                                            if parts else ''))

    def _begin(self, conn):
        self.transactions += 1

    def _wrap(self, name, method):
        def counted(*args, **kwargs):
            self.calls += 1
            self.by_call[name] += 1
            if self.keep:
                self.log.append('(%s)' % name)
            return method(*args, **kwargs)
        return counted

    def __enter__(self):
        sa.event.listen(sa.engine.Engine, 'before_cursor_execute', self._stmt)
        sa.event.listen(sa.engine.Engine, 'begin', self._begin)
        if self.driver is not None:
            self.driver.on_sql = self._sql
        if self.engine is not None:
            dialect = self.engine.dialect
            for name in self.WRAPPED:
                setattr(dialect, name, self._wrap(name, getattr(dialect,
                                                                name)))
        return self

    def __exit__(self, *exc):
        sa.event.remove(sa.engine.Engine, 'before_cursor_execute', self._stmt)
        sa.event.remove(sa.engine.Engine, 'begin', self._begin)
        if self.driver is not None:
            self.driver.on_sql = None
        if self.engine is not None:
            for name in self.WRAPPED:
                delattr(self.engine.dialect, name)


def load(backend):
    app = deploy.loadapp('config:' + backends.PASTE_INI,
                         name=backends.PIPELINE,
                         global_conf={'oslo_config_file': backend.conf_file})
    tags_app = backends.find_tags_app(app)
    images = ['inproc-%02d' % i for i in range(IMAGES)]
    for image_id in images + [TAGGED]:
        tags_app.driver.create_image(image_id, backends.OWNER, 'private')
    owner = context.RequestContext(project_id=backends.OWNER,
                                   overwrite=False)
    for n in range(TAGS):
        tags_app.driver.add_tag(owner, TAGGED, 'tag-%03d' % n, TAGS,
                                lambda image: None)
    return app, tags_app, images


def _environ(method, image_id, tag):
    return webob.Request.blank('/v2/images/%s/tags/%s' % (image_id, tag),
                               method=method,
                               headers=backends.IDENTITY).environ


def plan(images, n, prefix='t'):
    """(kind, environ, expected status) in execution order: n of each kind."""
    steps = []
    for i in range(n):
        image_id = images[i % len(images)]
        tag = '%s-%d' % (prefix, i)
        steps.append(('put', _environ('PUT', image_id, tag), '204'))
        steps.append(('put_present', _environ('PUT', image_id, tag), '204'))
        steps.append(('delete', _environ('DELETE', image_id, tag), '204'))
        steps.append(('delete_absent',
                      _environ('DELETE', image_id, 'absent-%d' % i), '404'))
        steps.append(('delete_absent_tagged',
                      _environ('DELETE', TAGGED, 'absent-%d' % i), '404'))
    return steps


def execute(app, steps, counter=None):
    """Run the steps; per kind: wall ns list, cpu ns total, statements."""
    out = {k: {'wall': [], 'cpu': 0, 'sql': 0, 'trips': 0, 'tx': 0,
               'calls': 0, 'bad': 0} for k in KINDS}
    status = []

    def start_response(s, headers, exc_info=None):
        status.append(s)

    perf, cpu = time.perf_counter_ns, time.process_time_ns
    for kind, environ, expected in steps:
        s0 = counter.statements if counter else 0
        r0 = counter.trips if counter else 0
        t0 = counter.transactions if counter else 0
        k0 = counter.calls if counter else 0
        del status[:]
        c = cpu()
        w = perf()
        for _ in app(environ, start_response):
            pass
        w = perf() - w
        c = cpu() - c
        rec = out[kind]
        rec['wall'].append(w)
        rec['cpu'] += c
        if counter:
            rec['sql'] += counter.statements - s0
            rec['trips'] += counter.trips - r0
            rec['tx'] += counter.transactions - t0
            rec['calls'] += counter.calls - k0
        if not status or not status[0].startswith(expected):
            rec['bad'] += 1
    return out


def run(backend, settings):
    """Per kind: p50/p99 wall us, mean CPU us, SQL statements and txns."""
    app, tags_app, images = load(backend)
    # Warm-up (caches, connections), then the measured run.
    execute(app, plan(images, max(20, settings.inproc_n // 10), 'w'))
    steps = plan(images, settings.inproc_n)
    gc.collect()
    driver = tags_app.driver if backend.is_sql else None
    with SQLCounter(driver) as counter:
        raw = execute(app, steps, counter)
    result = {}
    for kind, rec in raw.items():
        n = len(rec['wall'])
        walls = sorted(rec['wall'])
        result[kind] = {
            'n': n,
            'p50_us': statistics.median(walls) / 1000,
            'p99_us': walls[min(n - 1, int(n * 0.99))] / 1000,
            'cpu_us': rec['cpu'] / n / 1000,
            'sql': rec['sql'] / n,
            'trips': (rec['trips'] + rec['calls']) / n,
            'tx': rec['tx'] / n,
            'calls': rec['calls'] / n,
            'bad': rec['bad'],
        }
    statements = sample_statements(app, images, driver) if driver else {}
    if backend.is_sql:
        tags_app.driver.engine.dispose()
    return {'kinds': result, 'statements': statements}


def sample_statements(app, images, driver):
    """The SQL text of one request of each kind, for the report."""
    samples = {}
    with SQLCounter(driver) as counter:
        counter.keep = 1
        for kind, environ, _ in plan(images[:1], 1, 'sample'):
            del counter.log[:]
            for _ in app(environ, lambda *a: None):
                pass
            samples[kind] = list(counter.log)
    return samples
