"""SQL driver on Glance's schema: one read, then the change, on one connection.

1. ``SELECT`` the image and its live tags, without a lock (and the
   caller's membership in a second ``SELECT``, for a shared image of
   another project only). Visibility, policy, existence and quota are
   decided from it in Python, with exact (case-sensitive) string
   comparison. Every outcome that changes nothing (404, 403, 413, a PUT of a
   tag already there) is answered here: it was true when the read was taken.
2. A change is one transaction. It first locks the live image: its row
   (MySQL/PostgreSQL: ``SELECT ... FOR UPDATE``; MariaDB: the ``updated_at``
   bump) or the database (SQLite: the bump, ``UPDATE images SET
   updated_at``), so the writers of one image are serialised. Then a
   guarded ``INSERT`` of the tag (only if it is still absent and the count
   still under the quota) or soft-delete of every live copy of it (only if
   there still is one), and ``updated_at`` is bumped where the write
   changed a row (where the bump came first, the transaction is rolled
   back if the write changed nothing). A guard that changes nothing means
   another writer came first (or the image is gone): nothing is changed and
   the whole change starts again from a new read, which then answers from
   the new state.

Three statements per change (MySQL, not MariaDB: four; one more on a
Galera node, see CLEAR), one per no-change answer, compiled once from the
SQLAlchemy Core statements below and sent on the driver's own cursor of a
pooled connection. Round trips:

- PostgreSQL (psycopg2): the connection is in autocommit, so the read is
  one round trip with no transaction to end. The change is one query string
  (one round trip), which PostgreSQL runs as one transaction, each statement
  with a snapshot of its own (READ COMMITTED): ``SELECT ... FOR UPDATE`` of
  the image, then the guarded write with the ``updated_at`` bump in the same
  statement, applied only if the write changed a row.
- MySQL/MariaDB: the connection is in autocommit too (the driver leaves it
  so), so the read is one round trip with nothing to end. The change is one
  query string. On MariaDB it is one compound statement (``BEGIN NOT
  ATOMIC``): the ``updated_at`` bump, which locks the image row, then the
  guarded write (its guards are current reads), then ``COMMIT`` if the
  write changed a row, and if not ``ROLLBACK`` and a ``SIGNAL`` (an error
  that the driver takes as a lost race; an OK answer costs both sides less
  than a result set). The server answers it in one packet, where a query
  string of statements is answered statement by statement (a ``COMMIT``
  waits for the log), and the worker waits once instead of four times.
  MariaDB's read and blocks are prepared once per connection, as
  PostgreSQL's statements are, and run with ``EXECUTE ... USING`` their
  values. On MySQL (no anonymous blocks, and ``USING`` takes only
  variables): ``START TRANSACTION``, ``SELECT ... FOR UPDATE``, the
  guarded write, the bump only if the write changed a row
  (``ROW_COUNT()``), ``COMMIT``.
- SQLite (no network; WAL): the read is a statement of its own, ended
  before the write lock is taken (a read transaction cannot take the write
  lock once another writer has committed).

Lock contention (a lock waited for ``[imagetags] lock_timeout`` at most),
lost connections and a database that cannot take the change now
(read-only, full) are retried as a whole; past the retries the request
answers 503.
"""
import contextlib
import datetime
import functools
import json
import logging
import os
import threading
import time
import weakref

from oslo_db import api as oslo_db_api
from oslo_db import exception as db_exc
from oslo_db.sqlalchemy import enginefacade
import sqlalchemy as sa

from imagetags import db
from imagetags.db.sql import models

LOG = logging.getLogger(__name__)

_images, _members = models.images, models.image_members
_tags = models.image_tags
_IMAGE_COLUMNS = [c for c in _images.c
                  if c.name not in ('deleted', 'deleted_at')]
_LIVE = sa.false()

BUMP = (_images.update()
        .where(_images.c.id == sa.bindparam('image_id'),
               _images.c.deleted == _LIVE)
        .values(updated_at=sa.bindparam('now')))
# Galera (MariaDB/MySQL with wsrep on) certifies a transaction against the
# other nodes' by the rows it changed, and a row lock is not replicated. A
# bump within the second of the image's last one (MySQL's DATETIME keeps
# whole seconds) changes no row, so two nodes' writes of one image did not
# conflict: duplicate live tags and a quota passed (seen on two nodes). On
# Galera the bump therefore comes after this, which always changes the row
# (the bump then changes it back from NULL, inside the transaction).
CLEAR = (_images.update()
         .where(_images.c.id == sa.bindparam('image_id'),
                _images.c.deleted == _LIVE)
         .values(updated_at=sa.null()))


_THE_IMAGE = sa.and_(_images.c.id == sa.bindparam('image_id'),
                     _images.c.deleted == _LIVE)
# The tags are found through the image's id: without statistics SQLite
# would walk every tag row the image ever had (soft-deleted ones too) in id
# order for an ORDER BY.
_ITS_LIVE_TAGS = sa.and_(_tags.c.image_id == _images.c.id,
                         _tags.c.deleted == _LIVE)
# show_image's: the image, then a row for each live tag (in no order).
READ = (sa.select(*_IMAGE_COLUMNS, _tags.c.id.label('tag_id'),
                  _tags.c.value.label('tag'))
        .select_from(_images.outerjoin(_tags, _ITS_LIVE_TAGS))
        .where(_THE_IMAGE))
# Glance's extra properties of an image (a table imagetags' own databases do
# not have), for its notification.
_PROPERTIES = sa.table('image_properties', sa.column('image_id'),
                       sa.column('name'), sa.column('value'),
                       sa.column('deleted', sa.Boolean))
PROPERTIES = sa.select(_PROPERTIES.c.name, _PROPERTIES.c.value).where(
    _PROPERTIES.c.image_id == sa.bindparam('image_id'),
    _PROPERTIES.c.deleted == _LIVE)
# The caller's live membership. Asked apart, and only when it matters: as a
# subquery of the read it cost MariaDB a third of the read (70 of 190 us).
# Written ``deleted != true``: without statistics SQLite would rather use
# the index on ``deleted`` (every live membership of every image) for
# ``deleted = 0``.
MEMBER = sa.select(sa.exists().where(
    _members.c.image_id == sa.bindparam('image_id'),
    _members.c.member == sa.bindparam('project'),
    _members.c.deleted != sa.true()))
# The live tags as one JSON array (text; NULL for none on PostgreSQL and
# MySQL).
_JSON_TAGS = {'sqlite': sa.func.json_group_array,
              'postgresql': lambda value: sa.cast(sa.func.json_agg(value),
                                                  sa.Text),
              'mysql': sa.func.json_arrayagg}


def _json_tags(dialect):
    """The aggregate of the live tags as a JSON array, or None: other
    databases, and a SQLite built without its JSON functions (built in
    since 3.38), read rows (``rows_statement``)."""
    if dialect.name == 'sqlite':
        conn = dialect.loaded_dbapi.connect(':memory:')
        try:
            conn.execute('SELECT json_group_array(1)')
        except dialect.loaded_dbapi.Error:
            return None
        finally:
            conn.close()
    return _JSON_TAGS.get(dialect.name)


def _image_columns(dialect):
    """The image's columns; MySQL's as one JSON object: PyMySQL parses each
    column's description in Python, and 21 columns cost more client CPU
    than the round trip (208 us; as one: 108 us)."""
    if dialect.name != 'mysql':
        return _IMAGE_COLUMNS
    return [sa.func.json_object(*[x for c in _IMAGE_COLUMNS for x in (
        sa.literal_column("'%s'" % c.name), c)])]


def read_statement(dialect, tags):
    """The requests' read: the live image and its live tags, in one row,
    the tags as one JSON array (``tags``: ``_json_tags(dialect)``). A row
    per tag, each with the image's columns, cost the drivers (and MariaDB,
    its JSON) per row and column: a DELETE of an absent tag on an image
    with 128 tags cost, in process, worker + database CPU, SQLite
    0.53-0.73 ms, PostgreSQL 1.17, MariaDB 2.7 (one row: 0.23-0.32, 0.62,
    0.82-0.95)."""
    return sa.select(*_image_columns(dialect), sa.select(
        tags(_tags.c.value)).where(
            _ITS_LIVE_TAGS).scalar_subquery()).where(_THE_IMAGE)


def rows_statement(dialect):
    """The read as the image's row, then a row per live tag with only its
    image id and value (UNION ALL). MySQL's when its JSON array was cut:
    MariaDB cuts a JSON_ARRAYAGG at ``group_concat_max_len`` (1 MB by
    default)."""
    image = _image_columns(dialect)
    return sa.union_all(
        sa.select(*image, sa.null(), sa.null()).where(_THE_IMAGE),
        sa.select(*[sa.null()] * len(image), _tags.c.image_id,
                  _tags.c.value).where(
                      _tags.c.image_id == sa.bindparam('image_id'),
                      _tags.c.deleted == _LIVE))


def _writes(dialect):
    """The guarded INSERTs and soft-delete: each changes nothing (0 rows) if
    the tag or the count changed since the unlocked read. MySQL's collations
    fold case and trailing spaces, so there tags compare as bytes.

    The quota guard counts the image's live rows, never fewer than its
    distinct tags, so it never lets the quota be passed. Only where the read
    saw a tag stored twice (Glance's races can leave that) is the second
    INSERT used, which counts distinct tags: on MariaDB a
    ``COUNT(DISTINCT ...)`` builds a temporary table, 250 us of server CPU
    (a ``COUNT(*)`` costs 80). A duplicate written between the read and the
    lock only makes the row count refuse; the change is then read again.
    Returns (insert, insert counting distinct values, soft-delete)."""
    def exact(x):
        return sa.cast(x, sa.LargeBinary) if dialect == 'mysql' else x
    live = sa.and_(_tags.c.image_id == sa.bindparam('image'),
                   _tags.c.deleted == _LIVE)
    same = sa.and_(live, exact(_tags.c.value) == exact(
        sa.bindparam('tag', type_=sa.String)))
    now = sa.bindparam('now', type_=sa.DateTime)

    def insert(count):
        return _tags.insert().from_select(
            ['image_id', 'value', 'created_at', 'updated_at', 'deleted'],
            sa.select(_images.c.id, sa.bindparam('tag', type_=sa.String),
                      now, now, sa.false())
            .where(_images.c.id == sa.bindparam('image'),
                   _images.c.deleted == _LIVE, ~sa.exists().where(same),
                   sa.select(count).where(live).scalar_subquery()
                   < sa.bindparam('limit')))
    soft_delete = _tags.update().where(same).values(
        deleted=sa.true(), deleted_at=now, updated_at=now)
    return (insert(sa.func.count()),
            insert(sa.func.count(sa.distinct(exact(_tags.c.value)))),
            soft_delete)


def _one_trip(dialect, writes, galera=False):
    """The change as one query string: lock, then the guarded write with
    the ``updated_at`` bump only where it changed a row; the count of
    bumped images (0 or 1) tells whether it changed anything.

    PostgreSQL (psycopg2) runs it as one transaction, each statement with a
    snapshot of its own (READ COMMITTED), so the guard sees every change
    committed before the lock; the bump is in the write's statement
    (psycopg2 sends a query string as it is; psycopg 3 binds parameters on
    the server, which takes one statement at a time). MySQL bumps in a
    statement of its own, on the write's ``ROW_COUNT()`` (on a Galera node
    after CLEAR, on its; MariaDB's block is made by the caller, of BUMP and
    the write). Returns {write: statements}, or None for SQLite."""
    lock = (sa.select(_images.c.id)
            .where(_images.c.id == sa.bindparam('image'),
                   _images.c.deleted == _LIVE)
            .with_for_update())
    if dialect.name == 'mysql':
        changed = sa.func.row_count() > sa.literal_column('0')
        bumps = [b.where(changed) for b in _bumps(galera)]
        return {write: (lock, write, *bumps) for write in writes}
    if dialect.name == 'sqlite':
        return None
    trips = {}
    for write in writes:
        changed = write.returning(_tags.c.image_id).cte('changed')
        trips[write] = lock, (
            _images.update()
            .where(_images.c.id.in_(sa.select(changed.c.image_id)))
            .values(updated_at=sa.bindparam('now', type_=sa.DateTime)))
    return trips


def _bumps(galera):
    return [CLEAR, BUMP] if galera else [BUMP]


# MariaDB's change: the bump (which takes the image's row lock; on a Galera
# node CLEAR, then the bump), then the guarded write; kept only if the
# write changed a row, else rolled back with an error.
_BLOCK = ('BEGIN NOT ATOMIC START TRANSACTION; %s; IF ROW_COUNT() > 0 '
          "THEN COMMIT; ELSE ROLLBACK; SIGNAL SQLSTATE '45000' SET "
          "MESSAGE_TEXT = 'imagetags: raced'; END IF; END")
# The error of that SIGNAL, as the DB-API raises it: the write changed
# nothing. An answer without a result set costs both sides less than the
# write's row count as one did (per PUT+DELETE pair, 71-113 us of the
# worker's CPU and 33-197 of MariaDB's).
_RACED = (1644, 'imagetags: raced')
# MySQL's CLIENT.MULTI_STATEMENTS capability flag (PyMySQL, mysqlclient).
_MULTI_STATEMENTS = 1 << 16
# The DB-API drivers that the requests run on, and are tested on: they go
# to the driver's own cursor, with its parameter style, its query strings
# of several statements and its transactions. Any other is refused at
# start-up: mysql-connector, MariaDB's connector (oslo.db gives it an
# option it does not take) and pg8000 failed every request, psycopg 3
# (SQLAlchemy casts its parameters) a PUT with no quota.
DRIVERS = ('sqlite+pysqlite', 'mysql+pymysql', 'mysql+mysqldb',
           'postgresql+psycopg2')
# PostgreSQL types of the statements' parameters (the others are strings).
_PG_TYPES = {'now': 'timestamp', 'limit': 'bigint'}


# Each new connection's wait for a row lock, in seconds ([imagetags]
# lock_timeout): MariaDB's own default is 50 s, PostgreSQL's for ever.
_LOCK_TIMEOUT = {'mysql': 'SET SESSION innodb_lock_wait_timeout = %d',
                 'postgresql': "SET SESSION lock_timeout = '%ds'"}


def _set_lock_timeout(sql, dbapi_connection, connection_record):
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(sql)
    finally:
        cursor.close()
    dbapi_connection.commit()


def _prepared(name, statement, dialect):
    """PostgreSQL: the statement's ``PREPARE`` (once per connection), the
    ``EXECUTE`` that runs it, and its text. Planning our reads and guarded
    writes costs PostgreSQL several times what running them does."""
    compiled = statement.compile(dialect=type(dialect)(
        paramstyle='numeric_dollar'))
    names = compiled.positiontup
    return ('PREPARE %s (%s) AS %s' % (name, ', '.join(
        _PG_TYPES.get(n, 'varchar') for n in names), compiled.string),
        'EXECUTE %s(%s)' % (name, ', '.join('%%(%s)s' % n for n in names)),
        compiled.string)


def _mariadb_prepared(dialect, named):
    """MariaDB: ``named`` ({name: statement, or a (block, [its
    statements]) pair}) prepared once per connection, as PostgreSQL's are:
    (the PREPAREs and their values, {name: the EXECUTE that runs it, its
    values given as literals (MariaDB 10.2)}, {name: its text}). Parsing
    them each time cost MariaDB 15-70 us of its CPU per read (of 183-243)
    and 40-60 us per block (of ~470), and the client its longer string."""
    qmark = type(dialect)(paramstyle='qmark')
    texts, names = {}, {}
    for name, statement in named.items():
        block, parts = statement if isinstance(statement, tuple) else (
            '%s', [statement])
        compiled = [s.compile(dialect=qmark) for s in parts]
        texts['imagetags_' + name] = block % '; '.join(
            c.string for c in compiled)
        names['imagetags_' + name] = [n for c in compiled
                                      for n in c.positiontup]
    return (('; '.join('PREPARE %s FROM %%(%s)s' % (n, n) for n in texts),
             texts),
            {n: 'EXECUTE %s USING %s' % (n, ', '.join(
                '%%(%s)s' % p for p in names[n])) for n in texts}, texts)


def _sql(statement, dialect):
    """The statement's text for the driver's cursor, with named parameters
    (for sqlite3 and mysqlclient, whose default styles are positional)."""
    if dialect.paramstyle not in ('pyformat', 'named'):
        dialect = type(dialect)(paramstyle='pyformat' if (
            dialect.paramstyle == 'format') else 'named')
    return statement.compile(dialect=dialect).string


def _datetime(text):
    """A MySQL DATETIME as JSON text; one it cannot be (a zero date) stays
    text, as PyMySQL leaves it."""
    try:
        return datetime.datetime.fromisoformat(text)
    except ValueError:
        return text


def _reader(dialect):
    """The rows of ``read_statement`` -> (the image's dict or None, its live
    tags, or None where the JSON array of them was cut). The image has
    SQLAlchemy's own conversions for this dialect (SQLite's datetimes,
    MySQL's and SQLite's booleans); MySQL's comes from its JSON object
    (datetimes as text)."""
    image = _image_reader(dialect)

    def read(rows, image_id):
        if not rows:
            return None, ()
        try:
            return image(rows[0]), json.loads(rows[0][-1] or '[]')
        except ValueError:
            return image(rows[0]), None
    return read


def _rows_reader(dialect):
    """The rows of ``rows_statement`` -> (the image's dict or None, its live
    tags)."""
    image = _image_reader(dialect)

    def read(rows, image_id):
        # MySQL compares ids as its collation does: exactly here.
        images = [row for row in rows if row[-2] is None]
        return (image(images[0]) if images else None,
                [row[-1] for row in rows if row[-2] == image_id])
    return read


def _image_reader(dialect):
    """An image's row (a driver tuple; MySQL's: its JSON object) -> the
    image dict. Only the columns that have a conversion are converted, one
    by one (every column through its conversion or none cost SQLite's read
    of a row 4.6 us; 2.8 now)."""
    def conversion(column):
        if dialect.name == 'mysql' and isinstance(column.type, sa.DateTime):
            return _datetime
        return column.type.dialect_impl(dialect).result_processor(
            dialect, None)
    names = [c.name for c in _IMAGE_COLUMNS]
    converts = [(c.name, conversion(c)) for c in _IMAGE_COLUMNS]
    converts = [(name, f) for name, f in converts if f is not None]

    def converted(image):
        for name, convert in converts:
            value = image[name]
            if value is not None:
                image[name] = convert(value)
        return image
    if dialect.name != 'mysql':
        return lambda row: converted(dict(zip(names, row)))
    return lambda row: converted(json.loads(row[0]))


# Driver errors that mean lock contention (retried, then 503): SQLite busy,
# PostgreSQL serialization failures, deadlocks and lock timeouts,
# MySQL/Galera deadlocks and lock wait timeouts, and InnoDB's error 1467, a
# lost wait for the AUTO-INC lock that an INSERT ... SELECT takes. Matched
# on the message, as oslo.db's filters do.
_CONTENTION = ('database is locked', 'could not serialize access',
               'deadlock detected', 'due to lock timeout',
               'Lock wait timeout', 'Deadlock found',
               'Failed to read auto-increment value from storage engine')
# A session that lost our prepared statements (DISCARD ALL, a pooler): the
# connection is dropped and the request retried on a fresh one.
_UNPREPARED = ('prepared statement "imagetags_',
               'Unknown prepared statement handler (imagetags_')
# PostgreSQL's read_only_sql_transaction, which psycopg2 calls internal: a
# standby, or a primary that a failover demoted, cannot take the change
# now. The connection is dropped (a new one may reach the new primary) and
# the request retried, then answered 503. (MySQL's read-only errors are
# operational already.)
_READ_ONLY = '25006'
# PostgreSQL's untranslatable_character: a database whose encoding (LATIN1,
# say) has no equivalent for a character of the tag cannot store it (400).
_UNTRANSLATABLE = '22P05'
# SQLite's result codes for a file that cannot take the change now:
# SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL (the disk, or max_page_count).
# The same 503 as a server's read-only or full disk.
_SQLITE_CANNOT_WRITE = (8, 10, 13)


def statements(query, prepared=None):
    """For tests and the bench: the SQL statements on tables that a query
    string sent by the driver (``on_sql``) carries, and the ends of
    transactions it carries (COMMIT, ROLLBACK; one COMMIT for MariaDB's
    block, which rolls back instead after a race). ``prepared``: the
    driver's ``prepared``; an ``EXECUTE`` counts as what it runs."""
    parts = []
    for part in query.split('; '):
        name = part.startswith('EXECUTE ') and part[8:].replace(
            '(', ' ').split(' ', 1)[0]
        parts += (prepared or {}).get(name, part).split('; ')
    if parts[0].startswith('BEGIN NOT ATOMIC'):
        return [p for p in parts if p.startswith(('UPDATE ', 'INSERT '))], [
            'COMMIT']
    ends = [p for p in parts if p in ('COMMIT', 'ROLLBACK')]
    return [p for p in parts if p not in ends and p not in (
        'BEGIN', 'START TRANSACTION')], ends


def _reconnecting(method):
    """Once more on a lost connection (the pool does not ping first)."""
    return oslo_db_api.wrap_db_retry(max_retries=1, retry_interval=0.01,
                                     retry_on_disconnect=True)(method)


def _lean(engine, options):
    """Drop the round trips and work that these transactions do not need.

    - oslo.db pings every connection it checks out (pool_pre_ping): a round
      trip per request. A connection lost meanwhile fails the transaction's
      first statement instead, and the whole transaction is retried.
    - The pool rolls back every connection it gets back, even right after
      ``engine.begin()`` committed or rolled back (a ROLLBACK round trip with
      PyMySQL); every transaction here has ended by then.
    - oslo.db gives a SQLite file a NullPool: every request opened the file
      and read the schema again. Pool its connections, as SQLAlchemy itself
      does for file databases, by ``[database]`` ``options`` as oslo.db
      pools a server's.

    These are private attributes of SQLAlchemy's pool (2.0, 2.1):
    ``imagetags.tests.test_driver`` checks that they still exist.
    """
    pool = engine.pool
    pool._pre_ping = False
    pool._reset_on_return = sa.pool.base.reset_none
    if engine.dialect.name == 'sqlite' and isinstance(pool, sa.pool.NullPool):
        engine.pool = sa.pool.QueuePool(
            pool._creator, **{name: value for name, value in (
                ('pool_size', options.max_pool_size),
                ('max_overflow', options.max_overflow),
                ('timeout', options.pool_timeout)) if value is not None},
            recycle=pool._recycle, pre_ping=False,
            reset_on_return=sa.pool.base.reset_none, _dispatch=pool.dispatch,
            dialect=pool._dialect)
    return engine


class _Kept:
    """The requests' connections: SQLAlchemy's pool, but the connection a
    request is done with is kept checked out for the next request, until it
    has been out of the pool for ``KEEP`` seconds.

    A checkout and checkin (SQLAlchemy's, with oslo.db's listeners) cost a
    gunicorn server 48-59 us of CPU per request over HTTP: kept, a SQLite
    DELETE of an absent tag cost 0.319 ms instead of 0.378, 16% more
    requests/s (doc/performance.rst). Back in the pool every ``KEEP``
    seconds, a connection gets the pool's recycling and oslo.db's fork
    guard as before, a second late at most. One connection at most is kept
    (a gunicorn sync worker, one thread, uses it for every request; a
    threaded server for some), so the pool's limits hold as before. An
    invalidated connection is never kept; ``engine.dispose()`` closes the
    kept one and a driver that is garbage collected returns it (the pool
    holds on to a connection checked out); a forked child leaves its
    parent's alone.
    """

    KEEP = 1.0

    def __init__(self, engine):
        self._engine = engine
        self._kept = []         # (connection, when it left the pool)
        self._pid = os.getpid()
        self._lock = threading.Lock()       # for give and _forked
        self._parents = []      # a parent process's, never used here
        sa.event.listen(engine, 'engine_disposed',
                        lambda engine: self.release(close=True))

    def take(self):
        """(a pooled connection, when it left the pool)."""
        if self._pid != os.getpid():
            self._forked()
        now = time.monotonic()
        try:
            conn, since = self._kept.pop()
        except IndexError:
            return self._engine.raw_connection(), now
        if now - since < self.KEEP:
            return conn, since
        conn.close()
        return self._engine.raw_connection(), now

    def give(self, conn, since):
        """Back from a request: kept, or returned to the pool."""
        if conn.dbapi_connection is not None and (
                time.monotonic() - since < self.KEEP):
            with self._lock:
                if not self._kept:
                    self._kept.append((conn, since))
                    return
        conn.close()

    def release(self, close=False):
        """The kept connection back to the pool (``close``: closed)."""
        if self._pid != os.getpid():
            self._forked()
        while self._kept:
            try:
                conn, _ = self._kept.pop()
            except IndexError:
                break
            (conn.invalidate if close else conn.close)()

    def _forked(self):
        with self._lock:
            if self._pid != os.getpid():
                self._parents += self._kept
                self._kept = []
                self._pid = os.getpid()


class _NoChange(Exception):
    """The request ends without changing anything."""


class _Raced(Exception):
    """The guarded write changed nothing: another writer got there between
    the read and the lock. The whole change is retried (and then answered
    from the new state)."""


class SQLDriver(db.Driver):
    def __init__(self, conf):
        super().__init__(conf)
        url = sa.engine.make_url(conf.database.connection)
        if url.get_backend_name() == 'mariadb':
            # SQLAlchemy's MySQL dialect serves MariaDB (it tells them apart
            # itself); the statements here are written for it.
            url = url.set(drivername='mysql+' + url.get_driver_name())
        backend = url.get_backend_name()
        driver = '%s+%s' % (backend, url.get_driver_name())
        if driver not in DRIVERS and '+' not in url.drivername:
            # No driver named, and SQLAlchemy's default is not one of ours
            # (postgresql:// is psycopg 3 since SQLAlchemy 2.1): ours.
            driver = next((d for d in DRIVERS if d.startswith(
                backend + '+')), driver)
            url = url.set(drivername=driver)
        if driver not in DRIVERS:
            raise ValueError(
                '[database] connection: imagetags does not run on %s://; '
                'use %s:// (mariadb+ for mysql+ as well)' % (
                    driver, ':// or '.join(DRIVERS)))
        if backend == 'sqlite' and url.database in (
                None, '', ':memory:'):
            raise ValueError(
                '[database] connection: an in-memory SQLite database is one '
                'per connection, each empty; use a file (sqlite:///path, then '
                'imagetags-manage db sync), or [imagetags] driver = memory')
        if backend == 'sqlite':
            # The embedded default: make its state directory. The busy wait
            # is lock_timeout (pysqlite's default is 5 s), per attempt.
            os.makedirs(os.path.dirname(os.path.abspath(url.database)),
                        exist_ok=True)
            if 'timeout' not in url.query:
                url = url.update_query_dict({'timeout': str(
                    conf.imagetags.lock_timeout)})
        if backend == 'mysql':
            # Tags are UTF-8: over another connection character set (a
            # URL's charset=latin1) a tag outside it failed with a 500, and
            # some were stored but never found again. (Without one, oslo.db
            # connects with utf8, as Glance does.)
            charset = url.query.get('charset', 'utf8')
            if charset not in ('utf8', 'utf8mb3', 'utf8mb4'):
                raise ValueError(
                    '[database] connection: charset=%s cannot carry every '
                    'tag; use utf8 (the default) or utf8mb4' % (charset,))
            # The lock and the guarded write go as one query string (every
            # statement here has its values bound by the driver).
            url = url.update_query_dict({'client_flag': str(
                int(url.query.get('client_flag', 0)) | _MULTI_STATEMENTS)})
        self._tm = enginefacade.transaction_context()
        # max_retries=0: no connection test at start-up (that is all oslo.db
        # uses it for), so that a process started while the database is down
        # answers 503 until it is back instead of failing to start (which
        # stops gunicorn altogether) or waiting max_retries x retry_interval.
        # oslo.db gives SQLite a NullPool, and its pool_timeout as well (a
        # TypeError at start-up): _lean's pool takes the pool options.
        self._tm.configure(**dict(
            conf.database.items(), max_retries=0, thread_checkin=False,
            connection=url.render_as_string(hide_password=False), **(
                {'pool_timeout': None} if backend == 'sqlite'
                else {})))
        self.engine = _lean(self._tm.writer.get_engine(), conf.database)
        if backend in _LOCK_TIMEOUT and (
                conf.imagetags.prepared_statements or
                backend != 'postgresql'):
            # Not behind PgBouncer in transaction mode (which needs the
            # prepared statements off): there a session's SET outlives the
            # transaction and reaches other clients' (Glance's) on the same
            # server connection. README: set it on the role there.
            sa.event.listen(self.engine, 'connect', functools.partial(
                _set_lock_timeout, _LOCK_TIMEOUT[backend] % (
                    conf.imagetags.lock_timeout)))
        self._connections = _Kept(self.engine)
        weakref.finalize(self, self._connections.release).atexit = False
        self._no_nul = self.engine.dialect.name == 'postgresql'
        self._has_properties = None     # a Glance database's
        self._insert, self._insert_distinct, self._soft_delete = _writes(
            self.engine.dialect.name)
        writes = {self._insert: 'add', self._insert_distinct: 'add_distinct',
                  self._soft_delete: 'remove'}
        dialect = self.engine.dialect
        self._sqlite = dialect.name == 'sqlite'
        # The requests' statements, compiled once; run on the driver's
        # cursor (SQLAlchemy's per-execution work cost more than the
        # statements' own round trips).
        # The read: one row where the tags can be one JSON array, else rows
        # (also MySQL's where MariaDB cut that array).
        tags = _json_tags(dialect)
        read = (read_statement(dialect, tags) if tags
                else rows_statement(dialect))
        self._read_sql = _sql(read, dialect)
        self._rows_sql = _sql(rows_statement(dialect), dialect)
        self._member_sql = _sql(MEMBER, dialect)
        self._bump_sql = _sql(BUMP, dialect)
        self._write_sql = {w: _sql(w, dialect) for w in writes}
        self._one_trip = self._prepare = self._block = None
        # MySQL (MariaDB too): a query string of several statements has
        # several results; its connections are left in autocommit (see
        # _change_once), so _transaction starts its own.
        self._mysql = dialect.name == 'mysql'
        # MySQL's family: its changes are made once the first connection
        # has told what the server is (_learn_server): ``server``, then
        # (MariaDB?, a Galera node?).
        self.server = None
        self._writes, self._read_statement = writes, read
        trips = None if self._mysql else _one_trip(dialect, writes)
        # PostgreSQL: autocommit; the change is a transaction of its own.
        self._autocommit = dialect.name == 'postgresql'
        # For tests and the bench: the prepared statements' SQL by name.
        self.prepared = {}
        if trips and conf.imagetags.prepared_statements:
            lock = trips[self._insert][0]
            plans = {name: _prepared('imagetags_' + name, stmt, dialect)
                     for name, stmt in [('read', read), ('member', MEMBER),
                                        ('lock', lock)] + [
                                            (name, trips[w][1])
                                            for w, name in writes.items()]}
            self._prepare = '; '.join(p for p, _, _ in plans.values()), None
            self.prepared = {'imagetags_' + name: text
                             for name, (_, _, text) in plans.items()}
            self._read_sql = plans['read'][1]
            self._member_sql = plans['member'][1]
            self._one_trip = {w: plans['lock'][1] + '; ' + plans[name][1]
                              for w, name in writes.items()}
        elif trips:
            self._one_trip = {write: '; '.join(_sql(s, dialect) for s in pair)
                              for write, pair in trips.items()}
        self._read_rows = _rows_reader(dialect)
        self._read = _reader(dialect) if tags else self._read_rows
        self._bind_now = sa.DateTime().dialect_impl(dialect).bind_processor(
            dialect) or (lambda now: now)
        self._dbapi_error = dialect.loaded_dbapi.Error
        self._unavailable = () if self._sqlite else (
            dialect.loaded_dbapi.OperationalError,
            dialect.loaded_dbapi.InterfaceError)
        # For tests and the bench: called with each round trip's SQL
        # ('COMMIT'/'ROLLBACK' for those) before it is sent.
        self.on_sql = None
        self._change = oslo_db_api.wrap_db_retry(
            max_retries=conf.imagetags.db_retries, retry_interval=0.01,
            inc_retry_interval=True, max_retry_interval=0.25, jitter=True,
            retry_on_deadlock=True, retry_on_disconnect=True,
            exception_checker=lambda e: isinstance(e, _Raced)
        )(self._change_once)

    def add_tag(self, ctx, image_id, tag, quota, check):
        def decide(live):
            if tag in live:
                raise _NoChange()
            count = len(set(live)) + 1
            if 0 <= quota < count:
                raise db.TagLimitExceeded(count, quota)
            if self._no_nul and '\x00' in tag:
                raise db.InvalidTag('PostgreSQL cannot store a tag that '
                                    'contains a NUL character.')
            write = (self._insert if len(live) == count - 1
                     else self._insert_distinct)
            # No quota, or one past what the databases' integers hold: a
            # limit that no image reaches.
            return write, {'tag': tag, 'limit': quota if (
                0 <= quota < 2 ** 31) else 2 ** 31}, [*dict.fromkeys(live),
                                                      tag]
        return self._run(ctx, image_id, check, decide)

    def delete_tag(self, ctx, image_id, tag, check):
        def decide(live):
            if tag not in live:
                raise db.TagNotFound(tag)
            return self._soft_delete, {'tag': tag}, [
                t for t in dict.fromkeys(live) if t != tag]
        return self._run(ctx, image_id, check, decide)

    def image_properties(self, image_id):
        if self._has_properties is None:
            self._has_properties = sa.inspect(self.engine).has_table(
                'image_properties')
        if not self._has_properties:
            return {}
        with self.engine.connect() as conn:
            return dict(conn.execute(PROPERTIES, {'image_id': image_id}).all())

    def _run(self, ctx, image_id, check, decide):
        try:
            return self._change(ctx, image_id, check, decide)
        except _NoChange:
            return False
        except (db_exc.DBDeadlock, db_exc.DBConnectionError, _Raced) as e:
            LOG.warning('Database unavailable or busy: %s', e)
            raise db.Unavailable() from e

    def _change_once(self, ctx, image_id, check, decide):
        """The read and the change on one pooled connection, through the
        driver's cursor (see the module's docstring for each database)."""
        try:
            conn, since = self._connections.take()
        except Exception as e:
            # The DB-API's error, or one in the chain of what the pool
            # raised: the engine's first connection runs SQLAlchemy's own
            # queries (the dialect's initialize) through oslo.db's error
            # handlers, and a connection lost between them (seen while
            # PostgreSQL started) comes out as ResourceClosedError, or as
            # what those handlers raise (NotImplementedError with
            # SQLAlchemy 2.1 and oslo.db 18).
            if isinstance(e, sa.exc.TimeoutError):
                # Every connection the pool may open is in use, past
                # [database] pool_timeout: busy, not retried (that was the
                # wait).
                LOG.warning('Database unavailable or busy: %s', e)
                raise db.Unavailable() from e
            cause = _dbapi_cause(e, self._dbapi_error)
            if cause is not None:
                raise self._failed(cause) from e
            if isinstance(e, sa.exc.ResourceClosedError):
                raise db_exc.DBConnectionError(e) from e
            raise
        # clean: no transaction open (every DB-API in DRIVERS reads in
        # autocommit; MySQL's changes end with their COMMIT too).
        dbapi, cursor, clean = conn.dbapi_connection, None, False
        try:
            if self._autocommit:
                dbapi.autocommit = True
            elif self._mysql:
                # Sends SET AUTOCOMMIT only where it is off: a new
                # connection (show/create/delete_image leave it on).
                dbapi.autocommit(True)
            cursor = dbapi.cursor()
            if self._mysql and self.server is None:
                self._learn_server(cursor)
            self._prepare_on(conn, cursor)
            keys = {'image_id': image_id, 'project': ctx.project_id}
            rows = self._send(cursor, self._read_sql, keys, True)
            clean = True
            # One image (its id is the key), compared exactly: MySQL's
            # collation folds case.
            image, live = self._read(rows, image_id)
            if live is None:
                image, live = self._read_rows(self._send(
                    cursor, self._rows_sql, keys, True), image_id)
            if not image or image['id'] != image_id:
                raise db.ImageNotFound(image_id)
            check(db.visible(image, ctx, lambda: bool(self._send(
                cursor, self._member_sql, keys, True)[0][0])))
            write, values, tags = decide(live)
            now = _now()
            values = dict(values, image=image_id, image_id=image_id,
                          now=self._bind_now(now))
            clean = False
            if self._one_trip:
                changed = self._send_change(cursor, write, values)
                clean = True
            else:
                if self._sqlite:
                    self._send(cursor, 'BEGIN', ())
                if self._send(cursor, self._bump_sql, values) < 1:
                    raise db.ImageNotFound(image_id)
                changed = self._send(cursor, self._write_sql[write], values)
            if changed < 1:
                # The guard saw another writer's change (in one trip: or the
                # image is gone); the next read tells which.
                raise _Raced()
            if not clean:
                self._end(dbapi, 'COMMIT')
                clean = True
            return dict(image, tags=tags, updated_at=now)
        except self._dbapi_error as e:
            raise self._failed(e, conn) from e
        finally:
            self._finish(conn, since, dbapi, cursor, clean)

    def _failed(self, e, conn=None):
        """A driver error as oslo.db would raise it: lock contention, or a
        database server that cannot serve (an operational or interface
        error: down, starting, stopping, connection lost; the pooled
        connection is dropped), or itself (a bug: 500). sqlite3 has no
        server and calls most of its errors operational (a missing table
        too): there, only contention and a file that cannot take the
        change are retried."""
        if any(text in str(e) for text in _CONTENTION):
            return db_exc.DBDeadlock(e)
        if getattr(e, 'pgcode', None) == _UNTRANSLATABLE:
            return db.InvalidTag("The database's encoding cannot store a "
                                 'character of this tag.')
        sqlite_cannot_write = ((getattr(e, 'sqlite_errorcode', None) or 0)
                               & 0xff) in _SQLITE_CANNOT_WRITE
        if sqlite_cannot_write or isinstance(e, self._unavailable) or getattr(
                e, 'pgcode', None) == _READ_ONLY or (
                any(text in str(e) for text in _UNPREPARED)):
            if conn is not None and conn.dbapi_connection is not None:
                if sqlite_cannot_write:
                    # Rolled back first (a file opened read-only stays so,
                    # hence dropped): closed with its transaction open and
                    # a statement not yet finalized, it would keep the
                    # write lock.
                    with contextlib.suppress(self._dbapi_error):
                        conn.dbapi_connection.rollback()
                conn.invalidate(e)
            return db_exc.DBConnectionError(e)
        return e

    def _learn_server(self, cursor):
        """MySQL's family, on the first connection: is it MariaDB, and a
        Galera node?"""
        cursor.execute("SHOW VARIABLES LIKE 'wsrep_on'")
        self.use_server(self.engine.dialect.is_mariadb, any(
            value.upper() == 'ON' for _, value in cursor.fetchall()))

    def use_server(self, mariadb, galera):
        """MySQL's family: MariaDB is sent its blocks and its prepared
        statements, MySQL MySQL's changes; a Galera node's changes CLEAR
        ``updated_at`` before they bump it. ``server`` is set last: a thread
        that sees it set finds the rest in place. (Tests call it to run
        MySQL's changes on MariaDB.)"""
        dialect, writes = self.engine.dialect, self._writes
        self._one_trip = {w: '; '.join(
            ['START TRANSACTION'] + [_sql(s, dialect) for s in trip] +
            ['COMMIT']) for w, trip in _one_trip(
                dialect, writes, galera).items()}
        if mariadb and self.conf.imagetags.prepared_statements:
            (self._prepare, run, self.prepared) = _mariadb_prepared(
                dialect, dict({name: (_BLOCK, _bumps(galera) + [w])
                               for w, name in writes.items()},
                              read=self._read_statement, member=MEMBER))
            self._read_sql = run['imagetags_read']
            self._member_sql = run['imagetags_member']
            self._block = {w: run['imagetags_' + name]
                           for w, name in writes.items()}
        else:
            self._block = mariadb and {w: _BLOCK % '; '.join(_sql(
                s, dialect) for s in _bumps(galera) + [w]) for w in writes}
        self.server = mariadb, galera

    def _prepare_on(self, conn, cursor):
        """The PREPAREs, once per connection (a new or reset connection has
        none: its ``info`` is new)."""
        if self._prepare and not conn.info.get('imagetags_prepared'):
            self._send(cursor, *self._prepare)
            conn.info['imagetags_prepared'] = True

    def _send_change(self, cursor, write, values):
        """The change in one round trip; the count of rows it changed
        (MariaDB's block: 1, or 0 where it signals that it changed
        nothing)."""
        if not self._block:
            return self._send(cursor, self._one_trip[write], values)
        try:
            # rows=True: its one answer is an OK packet, with no row count
            # before a final COMMIT's for _send to return.
            self._send(cursor, self._block[write], values, True)
        except self._dbapi_error as e:
            if e.args[:2] != _RACED:
                raise
            return 0
        return 1

    def _send(self, cursor, sql, params, rows=False):
        """The first statement's rows, or the row count of the last one
        (MySQL: of the one before the final COMMIT)."""
        if self.on_sql is not None:
            self.on_sql(sql)
        cursor.execute(sql, params)
        if not self._mysql:
            return cursor.fetchall() if rows else cursor.rowcount
        result = [cursor.fetchall() if rows else cursor.rowcount]
        while cursor.nextset():
            result.append(cursor.rowcount)
        return result[0] if rows else result[-2]

    def _end(self, dbapi, how):
        if self.on_sql is not None:
            self.on_sql(how)
        (dbapi.commit if how == 'COMMIT' else dbapi.rollback)()

    def _finish(self, conn, since, dbapi, cursor, clean):
        """Back to the pool (or kept) with no transaction open and
        autocommit off; a connection that cannot be brought there is
        dropped."""
        if conn.dbapi_connection is None:      # invalidated
            return conn.close()
        try:
            if cursor is not None:
                cursor.close()
            if self._autocommit:
                dbapi.autocommit = False
            elif not clean:
                self._end(dbapi, 'ROLLBACK')
        except Exception as e:
            conn.invalidate(e)
        self._connections.give(conn, since)

    @contextlib.contextmanager
    def _transaction(self):
        """``engine.begin()``, a transaction on MySQL too, where the tag
        requests leave their pooled connections in autocommit."""
        with self.engine.begin() as conn:
            if self._mysql:
                conn.exec_driver_sql('START TRANSACTION')
            yield conn

    @_reconnecting
    def show_image(self, image_id):
        with self.engine.connect() as conn:
            rows = [r for r in conn.execute(READ, {'image_id': image_id,
                                                   'project': None})
                    if r.id == image_id]
        if not rows:
            return None
        image = _image(rows[0])
        image['tags'] = [r.tag for r in sorted(rows, key=lambda r: (
            r.tag_id or 0)) if r.tag_id is not None]
        return image

    @_reconnecting
    def create_image(self, image_id, owner, visibility='shared',
                     status='active', name=None, protected=False,
                     members=()):
        now = _now()
        with self._transaction() as conn:
            conn.execute(_images.insert().values(
                id=image_id, owner=owner, visibility=visibility,
                status=status, name=name, protected=protected,
                created_at=now, updated_at=now, deleted=False))
            for project, member_status in members:
                conn.execute(_members.insert().values(
                    image_id=image_id, member=project, status=member_status,
                    can_share=False, created_at=now, updated_at=now,
                    deleted=False))

    @_reconnecting
    def delete_image(self, image_id):
        now = _now()
        gone = dict(deleted=True, deleted_at=now, updated_at=now)
        with self._transaction() as conn:
            conn.execute(_tags.update().where(
                _tags.c.image_id == image_id, _tags.c.deleted == _LIVE
            ).values(**gone))
            conn.execute(_images.update().where(
                _images.c.id == image_id).values(status='deleted', **gone))


def _dbapi_cause(e, dbapi_error):
    """The DB-API's error that ``e`` is or has in its chain of causes, or
    None."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, dbapi_error):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def _image(row):
    return {c.name: getattr(row, c.name) for c in _IMAGE_COLUMNS}


def _now():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
