"""The driver contract: every driver, every backend, the same tests."""
import contextlib
import datetime
import gc
import os
import threading
import time

import fixtures
from oslo_context import context
from oslo_db import exception as db_exc
import sqlalchemy as sa
import testtools

from imagetags import db
from imagetags.db import sql as sql_driver
from imagetags.db.sql import migration
from imagetags.db.sql import models
from imagetags.tests import fixtures as it_fixtures

OWNER, OTHER, MEMBER, PENDING = 'p-owner', 'p-other', 'p-member', 'p-pending'
YEAR = datetime.timedelta(days=365)


def ctx(project, admin=False):
    return context.RequestContext(project_id=project, is_admin=admin,
                                  overwrite=False)


def prepare(driver, cursor, prefix):
    """The driver's PREPAREs on cursor, each name's imagetags_ as prefix."""
    if driver._prepare:
        sql, values = driver._prepare
        cursor.execute(sql.replace('imagetags_', prefix), values and {
            k.replace('imagetags_', prefix): v for k, v in values.items()})


def allow(image):
    allow.seen = image


def in_threads(count, work):
    """``work(n)`` for n in range(count), each in a thread of its own, all
    at once; returns the exceptions they raised."""
    errors = []

    def run(n):
        try:
            work(n)
        except Exception as e:  # returned
            errors.append(e)
    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


class DriverContract:
    backend = None
    options = {}
    dbapi = None    # the URL's DB-API driver, if not the fixture's

    def setUp(self):
        super().setUp()
        database = self.useFixture(it_fixtures.Database(self.backend))
        options = database.options
        if self.dbapi:
            url = sa.engine.make_url(options['database']['connection'])
            options = it_fixtures.merge(options, {'database': {
                'connection': url.set(drivername='%s+%s' % (
                    self.backend, self.dbapi)).render_as_string(
                        hide_password=False)}})
        self.conf_dir = self.useFixture(it_fixtures.ConfigDir(
            it_fixtures.merge(options, self.options)))
        self.driver = db.load_driver(self.conf_dir.conf())
        if self.dbapi:
            self.assertEqual(self.dbapi, self.driver.engine.dialect.driver)
        self.image = 'img-private'
        for visibility in ('private', 'public', 'shared', 'community'):
            self.driver.create_image(
                'img-' + visibility, OWNER, visibility,
                members=[(MEMBER, 'accepted'), (PENDING, 'pending')])

    def add(self, tag, image=None, quota=128, project=OWNER, admin=False):
        return self.driver.add_tag(ctx(project, admin), image or self.image,
                                   tag, quota, allow)

    def delete(self, tag, image=None, project=OWNER, admin=False):
        return self.driver.delete_tag(ctx(project, admin),
                                      image or self.image, tag, allow)

    def tags(self, image=None):
        return self.driver.show_image(image or self.image)['tags']

    def test_check_sees_the_stored_image(self):
        # The image given to the policy check has the stored values and
        # types (SQLite's datetimes, MySQL's booleans): show_image's.
        self.add('t', image='img-shared', project=MEMBER)
        self.assertFalse(self.add('t', image='img-shared', project=MEMBER))
        stored = self.driver.show_image('img-shared')
        del stored['tags']
        stored['member'] = MEMBER
        self.assertEqual(stored, allow.seen)
        for name, value in allow.seen.items():
            self.assertIs(type(stored[name]), type(value), name)
        self.assertIs(False, allow.seen['protected'])
        self.assertIsInstance(allow.seen['created_at'], datetime.datetime)
        # Text that needs quoting, and a true boolean.
        self.driver.create_image('img-named', OWNER, 'private',
                                 name='a "b" \\ c\u00e9\u30bf\n',
                                 protected=True)
        stored = self.driver.show_image('img-named')
        del stored['tags']
        self.add('t', image='img-named')
        self.assertEqual(dict(stored, member=None), allow.seen)
        self.assertIs(True, allow.seen['protected'])

    def test_add_then_delete(self):
        self.assertTrue(self.add('tag1'))
        self.assertEqual(['tag1'], self.tags())
        self.assertFalse(self.add('tag1'))
        self.assertEqual(['tag1'], self.tags())
        self.delete('tag1')
        self.assertEqual([], self.tags())
        self.assertRaises(db.TagNotFound, self.delete, 'tag1')

    def test_tags_shown_oldest_first(self):
        for tag in ('z', 'a', 'm'):
            self.add(tag)
        self.delete('a')
        self.add('a')
        self.assertEqual(['z', 'm', 'a'], self.tags())

    def test_tags_are_exact_strings(self):
        forms = ['Foo', 'foo', 'FOO', 'foo ', ' foo', 'fóo', 'é', 'e\u0301',
                 'タグ', ' ', '%', 'a,b', 'a;b', 'a+b', '.', '..', 'a\nb',
                 'a\tb', "'; DROP TABLE image_tags; --", 'k:v=1',
                 # Text that is JSON too: the read's array of tags holds it
                 # as strings.
                 '[1]', '{"a": 1}', 'null', 'true', '1', '"q"', '\\u0041']
        for tag in forms:
            self.assertTrue(self.add(tag), tag)
        self.assertEqual(forms, self.tags())
        self.assertRaises(db.TagNotFound, self.delete, 'fOo')
        self.assertRaises(db.TagNotFound, self.delete, 'foo  ')
        for tag in forms:
            self.delete(tag)
        self.assertEqual([], self.tags())

    def test_255_characters_of_three_bytes(self):
        tag = '\u30bf' * 255
        self.assertTrue(self.add(tag))
        self.assertEqual([tag], self.tags())

    def test_nul(self):
        if self.backend == 'postgresql':
            self.assertRaises(db.InvalidTag, self.add, 'a\x00b')
            self.assertEqual([], self.tags())
            self.assertRaises(db.TagNotFound, self.delete, 'a\x00b')
        else:
            self.assertTrue(self.add('a\x00b'))
            self.assertEqual(['a\x00b'], self.tags())
            self.delete('a\x00b')

    def test_a_change_returns_the_image_as_it_left_it(self):
        # For its notification: the live tags after it, and the updated_at
        # it wrote (MySQL keeps whole seconds of it).
        self.add('a')
        image = self.add('b')
        stored = self.driver.show_image(self.image)
        self.assertEqual((self.image, OWNER, ['a', 'b']), (
            image['id'], image['owner'], sorted(image['tags'])))
        self.assertLess(abs(image['updated_at'] - stored['updated_at']),
                        datetime.timedelta(seconds=1))
        image = self.delete('a')
        self.assertEqual(['b'], image['tags'])
        self.assertEqual(stored['created_at'], image['created_at'])

    def test_quota(self):
        for tag in ('a', 'b', 'c'):
            self.assertTrue(self.add(tag, quota=3))
        e = self.assertRaises(db.TagLimitExceeded, self.add, 'd', quota=3)
        self.assertEqual((4, 3), (e.attempted, e.maximum))
        self.assertFalse(self.add('c', quota=3))
        # Over a lowered quota: existing tags stay a no-op, deletes work.
        self.assertFalse(self.add('c', quota=1))
        self.assertRaises(db.TagLimitExceeded, self.add, 'd', quota=0)
        self.delete('a')
        self.assertTrue(self.add('d', quota=3))
        self.assertTrue(self.add('e', quota=-1))
        # A quota past what the databases' integers hold (an IntOpt takes
        # any) is as good as none.
        self.assertTrue(self.add('f', quota=2 ** 63))
        self.assertTrue(self.add('g', quota=10 ** 30))
        self.assertEqual(['b', 'c', 'd', 'e', 'f', 'g'], self.tags())

    def test_visibility(self):
        # (project, admin) -> images it can see, with its member value.
        expect = {
            (OWNER, False): {'private', 'public', 'shared', 'community'},
            (OTHER, False): {'public', 'community'},
            (MEMBER, False): {'public', 'shared', 'community'},
            (PENDING, False): {'public', 'shared', 'community'},
            (None, False): {'public', 'community'},
            (OTHER, True): {'private', 'public', 'shared', 'community'},
        }
        for (project, admin), seen in sorted(expect.items(), key=str):
            for visibility in ('private', 'public', 'shared', 'community'):
                image = 'img-' + visibility
                allow.seen = None
                if visibility in seen:
                    self.assertTrue(self.add('t', image, project=project,
                                             admin=admin))
                    self.assertEqual(image, allow.seen['id'])
                    self.assertEqual(OWNER, allow.seen['owner'])
                    self.assertEqual(visibility, allow.seen['visibility'])
                    member = (project if visibility == 'shared' and
                              project in (MEMBER, PENDING) else None)
                    self.assertEqual(member, allow.seen['member'])
                    self.delete('t', image, project=project, admin=admin)
                else:
                    self.assertRaises(db.ImageNotFound, self.add, 't', image,
                                      project=project, admin=admin)
                    self.assertRaises(db.ImageNotFound, self.delete, 't',
                                      image, project=project, admin=admin)
                    self.assertIsNone(allow.seen)

    def test_deleted_and_unknown_images(self):
        self.add('t')
        self.driver.delete_image(self.image)
        for admin in (False, True):
            self.assertRaises(db.ImageNotFound, self.add, 'u', admin=admin)
            self.assertRaises(db.ImageNotFound, self.delete, 't', admin=admin)
        self.assertRaises(db.ImageNotFound, self.add, 't', image='nope')
        self.assertRaises(db.ImageNotFound, self.add, 't',
                          image=self.image.upper())
        self.assertRaises(db.ImageNotFound, self.add, 't',
                          image=self.image + ' ')

    def test_check_refusal_changes_nothing(self):
        self.add('keep')
        before = self.driver.show_image(self.image)['updated_at']

        def refuse(image):
            raise RuntimeError('no')
        self.assertRaises(RuntimeError, self.driver.add_tag, ctx(OWNER),
                          self.image, 'new', 128, refuse)
        self.assertRaises(RuntimeError, self.driver.delete_tag, ctx(OWNER),
                          self.image, 'keep', refuse)
        image = self.driver.show_image(self.image)
        self.assertEqual(['keep'], image['tags'])
        self.assertEqual(before, image['updated_at'])

    def age_image(self):
        """Set updated_at a year back (MySQL keeps whole seconds only)."""
        self.driver._images[self.image]['updated_at'] -= YEAR

    def test_updated_at_only_on_change(self):
        def updated():
            return self.driver.show_image(self.image)['updated_at']
        self.age_image()
        t0 = updated()
        self.add('t')
        t1 = updated()
        self.assertGreater(t1, t0)
        self.age_image()
        t1 = updated()
        self.assertFalse(self.add('t'))
        self.assertRaises(db.TagNotFound, self.delete, 'absent')
        self.assertRaises(db.TagLimitExceeded, self.add, 'u', quota=1)
        self.assertEqual(t1, updated())
        self.delete('t')
        self.assertGreater(updated(), t1)

    def test_threads_lose_nothing(self):
        self.assertEqual([], in_threads(
            16, lambda n: self.add('t%02d' % n, quota=-1)))
        self.assertEqual(sorted('t%02d' % n for n in range(16)),
                         sorted(self.tags()))


class SQLOnly:
    def engine(self):
        return self.driver.engine

    def use_blocks(self):
        """A new driver's changes made as the class's (TestMySQL's)."""

    @contextlib.contextmanager
    def next_connection(self):
        """The pooled connection that the driver's next requests use: the
        one it keeps, kept for the rest of the test."""
        self.useFixture(fixtures.MockPatchObject(
            self.driver._connections, 'KEEP', 3600))
        conn, since = self.driver._connections.take()
        try:
            yield conn
        finally:
            self.driver._connections.give(conn, since)

    def age_image(self):
        i = models.images
        old = self.driver.show_image(self.image)['updated_at'] - YEAR
        with self.engine().begin() as conn:
            conn.execute(i.update().where(i.c.id == self.image).values(
                updated_at=old))

    def rows(self):
        t = models.image_tags
        with self.engine().connect() as conn:
            return conn.execute(sa.select(t.c.value, t.c.deleted,
                                          t.c.deleted_at)
                                .where(t.c.image_id == self.image)
                                .order_by(t.c.id)).all()

    def lose_the_first_connect(self, queries, cursor_class, option):
        """The server ends the connection after some of the queries that
        SQLAlchemy runs on an engine's first connection, before the next
        (``queries``): the pool then raises ResourceClosedError or
        NotImplementedError, not a DB-API error (seen while PostgreSQL
        started under load: a 500). It is a lost connection: retried.
        ``cursor_class``: the DB-API's, given as connect option ``option``;
        ``self.terminate(dbapi_connection)`` ends a connection."""
        terminate = self.terminate
        for n, before in enumerate(queries):
            driver = db.load_driver(self.conf_dir.conf())
            self.addCleanup(driver.engine.dispose)
            dropped = []

            class Cursor(cursor_class):
                def execute(self, sql, *args, before=before,
                            dropped=dropped):
                    if not dropped and before in sql:
                        dropped.append(sql)
                        terminate(self.connection)
                    return super().execute(sql, *args)

            sa.event.listen(driver.engine, 'do_connect',
                            lambda dialect, record, cargs, cparams, c=Cursor:
                            cparams.update({option: c}))
            self.assertTrue(driver.add_tag(ctx(OWNER), self.image,
                                           't%d' % n, 128, allow), before)
            self.assertEqual(1, len(dropped), before)
        self.assertEqual(['t%d' % n for n in range(len(queries))],
                         self.tags())

    def test_the_read_is_one_row_whatever_the_tags(self):
        # A request's read costs the drivers (and MariaDB's JSON) per row
        # and column: one row, the tags in one JSON array.
        rows = self.read_a_c()
        self.assertEqual(1, len(rows), rows)

    def read_a_c(self):
        """The raw rows of the requests' read of an image tagged a and c,
        after checking what the driver makes of them."""
        for tag in ('a', 'b', 'c'):
            self.add(tag)
        self.delete('b')
        conn = self.engine().raw_connection()
        try:
            cursor = conn.dbapi_connection.cursor()
            prepare(self.driver, cursor, 'test_')
            cursor.execute(self.driver._read_sql.replace(
                'imagetags_', 'test_'), {'image_id': self.image})
            rows = cursor.fetchall()
        finally:
            conn.invalidate()
            conn.close()
        image, live = self.driver._read(rows, self.image)
        self.assertEqual(self.image, image['id'])
        self.assertEqual(['a', 'c'], sorted(live))
        return rows

    def test_a_writer_between_the_read_and_the_lock(self):
        # Another writer changes the tag after this call's read: the guarded
        # write changes nothing, the transaction (its updated_at bump
        # included) rolls back, and the call answers from the new state.
        other = db.load_driver(self.conf_dir.conf())
        self.addCleanup(other.engine.dispose)
        for adding in (True, False):
            seen = []

            def racing_check(image):
                if not seen:
                    if adding:
                        other.add_tag(ctx(OWNER), self.image, 't', 128, allow)
                    else:
                        other.delete_tag(ctx(OWNER), self.image, 't', allow)
                    if self.backend == 'mysql':
                        time.sleep(1.1)     # DATETIME: whole seconds
                    seen.append(self.driver.show_image(self.image))

            if adding:
                self.assertFalse(self.driver.add_tag(
                    ctx(OWNER), self.image, 't', 128, racing_check))
            else:
                self.assertRaises(db.TagNotFound, self.driver.delete_tag,
                                  ctx(OWNER), self.image, 't', racing_check)
            self.assertEqual(seen[0], self.driver.show_image(self.image))
            self.assertEqual(adding, 't' in self.tags())

    def test_soft_delete_as_glance(self):
        self.add('t')
        self.delete('t')
        self.add('t')
        rows = self.rows()
        self.assertEqual([('t', True), ('t', False)],
                         [(r.value, r.deleted) for r in rows])
        self.assertIsNotNone(rows[0].deleted_at)
        self.assertIsNone(rows[1].deleted_at)

    def test_delete_heals_duplicate_rows(self):
        # Glance's races leave duplicate live rows; one DELETE removes all.
        now = sa.func.now()
        with self.engine().begin() as conn:
            for value in ('dup', 'dup', 'Dup'):
                conn.execute(models.image_tags.insert().values(
                    image_id=self.image, value=value, created_at=now,
                    deleted=False))
        self.assertFalse(self.add('dup'))
        # Two distinct tags in three rows: the quota counts tags. (A guard
        # counting rows would refuse, and the retries end in 503.)
        self.assertTrue(self.add('x', quota=3))
        self.assertRaises(db.TagLimitExceeded, self.add, 'y', quota=3)
        self.delete('dup')
        self.assertEqual(['Dup', 'x'], self.tags())
        self.assertRaises(db.TagNotFound, self.delete, 'dup')

    # A change's SQL statements (transaction control not counted) and the
    # query strings that carry them, COMMIT and ROLLBACK included: round
    # trips on a database server. PostgreSQL's PREPAREs (once per
    # connection) are not counted. A no-change answer: one and one.
    change_cost = None

    def test_statements_and_round_trips(self):
        sent = []
        self.driver.on_sql = lambda sql: sql.startswith(
            'PREPARE ') or sent.append(sql)
        for call, changes in ((lambda: self.add('t'), True),
                              (lambda: self.assertFalse(self.add('t')), False),
                              (lambda: self.delete('t'), True),
                              (lambda: self.assertRaises(
                                  db.TagNotFound, self.delete, 't'), False)):
            del sent[:]
            call()
            statements = [s for trip in sent
                          for s in sql_driver.statements(
                              trip, self.driver.prepared)[0]]
            self.assertEqual(self.change_cost if changes else (1, 1),
                             (len(statements), len(sent)), sent)

    def checkouts(self):
        """The count of checkouts from the engine's pool from now on."""
        out = []
        sa.event.listen(self.engine(), 'checkout', lambda *a: out.append(1))
        return out

    def test_one_connection_is_kept_between_requests(self):
        self.add('t')
        kept = self.driver._connections._kept[0][0].dbapi_connection
        checkouts = self.checkouts()
        self.assertRaises(db.TagNotFound, self.delete, 'absent')
        self.assertTrue(self.add('u'))
        self.assertEqual([], checkouts)
        self.assertIs(kept, self.driver._connections._kept[0][0]
                      .dbapi_connection)
        # Out of the pool for KEEP seconds, it goes back (where the pool's
        # recycling and fork guard apply) and the request checks one out.
        self.useFixture(fixtures.MockPatchObject(
            self.driver._connections, 'KEEP', 0.05))
        time.sleep(0.1)
        self.assertTrue(self.delete('u'))
        self.assertEqual([1], checkouts)
        self.assertEqual(1, len(self.driver._connections._kept))
        self.assertEqual(['t'], self.tags())

    def test_threads_leave_one_connection_kept_and_none_lost(self):
        def work(n):
            for _ in range(5):
                self.add('t%02d' % n, quota=-1)
                self.delete('t%02d' % n)
        self.assertEqual([], in_threads(8, work))
        self.assertEqual(1, len(self.driver._connections._kept))
        self.assertEqual(1, self.engine().pool.checkedout())
        self.assertEqual([], self.tags())

    def test_an_invalidated_connection_is_not_kept(self):
        self.add('t')
        conn, since = self.driver._connections.take()
        conn.invalidate()
        self.driver._connections.give(conn, since)
        self.assertEqual([], self.driver._connections._kept)
        checkouts = self.checkouts()
        self.assertTrue(self.add('u'))
        self.assertEqual([1], checkouts)
        self.assertEqual(['t', 'u'], self.tags())

    def test_dispose_closes_the_kept_connection(self):
        self.add('t')
        conn = self.driver._connections._kept[0][0]
        self.engine().dispose()
        self.assertEqual([], self.driver._connections._kept)
        self.assertIsNone(conn.dbapi_connection)
        self.assertEqual(0, self.engine().pool.checkedout())
        self.assertTrue(self.add('u'))
        self.assertEqual(['t', 'u'], self.tags())

    def test_a_collected_driver_returns_its_kept_connection(self):
        # A checked-out connection is held by the pool's registry for good.
        driver = db.load_driver(self.conf_dir.conf())
        engine = driver.engine
        self.addCleanup(engine.dispose)
        self.assertTrue(driver.add_tag(ctx(OWNER), self.image, 't', 128,
                                       allow))
        self.assertEqual(1, engine.pool.checkedout())
        del driver
        gc.collect()
        self.assertEqual(0, engine.pool.checkedout())

    def test_a_forked_child_leaves_the_parents_connection_alone(self):
        self.add('t')
        kept = self.driver._connections._kept[0][0].dbapi_connection
        read, write = os.pipe()
        child = os.fork()
        if child == 0:      # the child: which connection would it use?
            try:
                conn, _ = self.driver._connections.take()
                answer = b'parent' if conn.dbapi_connection is kept else (
                    b'own')
            except BaseException as e:
                answer = repr(e).encode()
            os.write(write, answer)
            os._exit(0)
        os.close(write)
        with os.fdopen(read, 'rb') as f:
            answer = f.read()
        os.waitpid(child, 0)
        self.assertEqual(b'own', answer)
        # The parent goes on with it.
        checkouts = self.checkouts()
        self.assertTrue(self.add('u'))
        self.assertEqual([], checkouts)
        self.assertIs(kept, self.driver._connections._kept[0][0]
                      .dbapi_connection)

    def test_lean_pool(self):
        # _lean sets private attributes of SQLAlchemy's pool: they must
        # still mean what they meant.
        pool = self.engine().pool
        for name in ('_pre_ping', '_reset_on_return', '_creator', '_recycle',
                     '_dialect'):
            self.assertTrue(hasattr(pool, name), name)
        self.assertFalse(pool._pre_ping)
        self.assertIs(sa.pool.base.reset_none, pool._reset_on_return)
        self.assertIsInstance(pool, sa.pool.QueuePool)
        sent = []
        self.driver.on_sql = lambda sql: sql.startswith(
            'PREPARE ') or sent.append(sql)
        self.add('t')
        self.delete('t')
        # The soft-delete sets the deletion columns only, never image_id.
        soft_delete = [s.split('UPDATE image_tags SET ')[1].split('WHERE')[0]
                       for trip in sent for s in sql_driver.statements(
                           trip, self.driver.prepared)[0]
                       if 'UPDATE image_tags SET ' in s]
        self.assertEqual(1, len(soft_delete), sent)
        self.assertEqual(['deleted', 'deleted_at', 'updated_at'], sorted(
            c.split('=')[0].strip() for c in soft_delete[0].split(',')))

    def test_pool_options_and_an_exhausted_pool(self):
        # The [database] pool options size every database's pool (SQLite's
        # too: oslo.db gave it a NullPool and pool_timeout, a TypeError at
        # start-up). A request that finds every connection in use past
        # pool_timeout is Unavailable (503), where it was a 500.
        self.driver = db.load_driver(self.useFixture(it_fixtures.ConfigDir(
            it_fixtures.merge(self.conf_dir.options, self.options, {
                'database': {'max_pool_size': 1, 'max_overflow': 0,
                             'pool_timeout': 1}}))).conf())
        self.use_blocks()
        pool = self.engine().pool
        self.assertEqual((1, 0, 1), (pool.size(), pool._max_overflow,
                                     pool._timeout))
        self.assertTrue(self.add('t'))
        self.driver._connections.release()
        held = self.engine().raw_connection()
        self.assertRaises(db.Unavailable, self.add, 'u')
        held.close()
        self.assertTrue(self.add('u'))
        self.driver._connections.release()
        self.assertEqual(['t', 'u'], self.tags())

    def test_one_trip_changes_nothing_after_a_race(self):
        # The lock + guarded write + bump sent as one string (PostgreSQL,
        # MySQL, MariaDB's block): a guard that misses changes nothing,
        # updated_at included.
        if self.backend == 'sqlite':
            self.skipTest('changes in one trip are for PostgreSQL '
                          '(psycopg2) and MySQL')
        insert, soft_delete = self.driver._insert, self.driver._soft_delete

        def run(write, day, **values):
            values = dict({'image': self.image, 'image_id': self.image,
                           'tag': 't', 'limit': 2,
                           'now': self.driver._bind_now(
                               datetime.datetime(2030, 1, day))}, **values)
            conn = self.engine().raw_connection()
            try:
                cursor = conn.cursor()
                if self.driver._mysql and self.driver.server is None:
                    self.driver._learn_server(cursor)
                self.driver._prepare_on(conn, cursor)
                changed = self.driver._send_change(cursor, write, values)
                conn.commit()
            finally:
                conn.close()
            image = self.driver.show_image(self.image)
            return changed, image and image['updated_at']

        self.assertEqual(0, run(soft_delete, 1)[0])
        self.assertEqual((1, datetime.datetime(2030, 1, 2)), run(insert, 2))
        self.assertEqual((0, datetime.datetime(2030, 1, 2)), run(insert, 3))
        self.assertEqual((0, datetime.datetime(2030, 1, 2)),
                         run(insert, 4, tag='u', limit=1))
        self.assertEqual((1, datetime.datetime(2030, 1, 5)),
                         run(soft_delete, 5))
        self.assertEqual((0, datetime.datetime(2030, 1, 5)),
                         run(soft_delete, 6))
        self.driver.delete_image(self.image)
        self.assertEqual((0, None), run(insert, 7, tag='v'))
        self.assertEqual([], [r for r in self.rows()
                              if r.value == 'v'])

    def test_guarded_writes_change_nothing_after_a_race(self):
        # What the guards see when another writer came between the read and
        # the lock: the tag already there, the quota full, the tag gone.
        insert, soft_delete = self.driver._insert, self.driver._soft_delete
        values = {'image': self.image, 'tag': 't', 'limit': 2,
                  'now': datetime.datetime(2026, 1, 1)}
        with self.engine().begin() as conn:
            self.assertEqual(0, conn.execute(soft_delete, values).rowcount)
            self.assertEqual(1, conn.execute(insert, values).rowcount)
            self.assertEqual(0, conn.execute(insert, values).rowcount)
            # Case and trailing spaces count, on MySQL too.
            for tag in ('T', 't ', 'u'):
                self.assertEqual(1, conn.execute(insert, dict(
                    values, tag=tag, limit=10)).rowcount, tag)
            self.assertEqual(0, conn.execute(insert, dict(
                values, tag='v', limit=4)).rowcount)
            self.assertEqual(1, conn.execute(soft_delete, values).rowcount)
            self.assertEqual(0, conn.execute(soft_delete, values).rowcount)
            # Four live rows, three tags: the first INSERT counts rows, the
            # other tags.
            conn.execute(models.image_tags.insert().values(
                image_id=self.image, value='u', created_at=values['now'],
                deleted=False))
            distinct = self.driver._insert_distinct
            for insert, changed in ((self.driver._insert, 0), (distinct, 1)):
                self.assertEqual(changed, conn.execute(insert, dict(
                    values, tag='w', limit=4)).rowcount)
        self.assertEqual(['T', 't ', 'u', 'u', 'w'], self.tags())

    def test_migrations_match_models(self):
        from alembic import autogenerate
        from alembic import migration as alembic_migration
        with self.engine().connect() as conn:
            diff = autogenerate.compare_metadata(
                alembic_migration.MigrationContext.configure(conn),
                models.metadata)
        dialect = self.engine().dialect.name
        diff = [d for d in diff if not (d[0] == 'remove_table' and d[1].name
                                        == migration.VERSION_TABLE) and not (
            d[0] == 'add_index' and dialect not in models.ONLY_ON.get(
                d[1].name, (dialect,)))]
        self.assertEqual([], diff)
        self.assertEqual('0003', migration.version(self.engine()))
        with self.engine().connect() as conn:
            names = {i['name'] for i in sa.inspect(conn).get_indexes(
                'image_tags')}
        self.assertEqual({n for n, on in models.ONLY_ON.items()
                          if dialect in on}, names & set(models.ONLY_ON))

    def test_db_sync_refuses_a_database_it_does_not_manage(self):
        engine = self.engine()
        with engine.begin() as conn:
            conn.execute(sa.text('DROP TABLE ' + migration.VERSION_TABLE))
        self.assertRaises(migration.NotManaged, migration.upgrade, engine)


class TestMemory(DriverContract, testtools.TestCase):
    backend = 'memory'


class TestSQLite(SQLOnly, DriverContract, testtools.TestCase):
    backend = 'sqlite'
    change_cost = (3, 5)    # read, BEGIN, bump, write, COMMIT: no network

    def test_the_read_finds_rows_through_the_image(self):
        # SQLite plans without statistics: the read must not walk every
        # live membership (index on deleted) or every tag row the image
        # ever had, soft-deleted ones included.
        with self.engine().connect() as conn:
            plan = [row[-1] for sql in (self.driver._read_sql,
                                        self.driver._member_sql)
                    for row in conn.exec_driver_sql(
                        'EXPLAIN QUERY PLAN ' + sql,
                        {'image_id': self.image, 'project': OWNER})]
        self.assertIn('SEARCH image_tags USING COVERING INDEX '
                      'ix_image_tags_image_id_deleted_value '
                      '(image_id=? AND deleted=?)', plan)
        self.assertIn('SEARCH image_members USING INDEX '
                      'ix_image_members_image_id_member '
                      '(image_id=? AND member=?)', plan)

    def test_a_file_that_cannot_take_a_change_is_unavailable(self):
        # Read-only, or full (the disk; here the file's max_page_count): a
        # change is retried, then Unavailable (503), never a 500, and leaves
        # no lock behind; reads still answer. Its connection is dropped (a
        # file opened read-only stays so): once the file can take changes,
        # the next one is made.
        self.add('a')
        big = 'b' * 20000       # more than the pages a full file has left
        for pragma in ('query_only = 1', 'max_page_count = 1'):
            def on_connect(dbapi_connection, record, pragma=pragma):
                dbapi_connection.execute('PRAGMA ' + pragma)
            sa.event.listen(self.engine(), 'connect', on_connect)
            self.driver._connections.release(close=True)
            self.engine().dispose()
            self.assertRaises(db.Unavailable, self.add, big)
            self.assertRaises(db.TagNotFound, self.delete, big)
            self.assertFalse(self.add('a'))
            if pragma.startswith('query_only'):
                self.assertRaises(db.Unavailable, self.delete, 'a')
            sa.event.remove(self.engine(), 'connect', on_connect)
            self.assertTrue(self.add(pragma))
        self.assertTrue(self.add(big))
        self.assertEqual(['a', 'query_only = 1', 'max_page_count = 1', big],
                         self.tags())

    def test_db_sync_puts_the_file_in_wal_mode(self):
        with self.engine().connect() as conn:
            self.assertEqual('wal', conn.exec_driver_sql(
                'PRAGMA journal_mode').scalar())


class TestSQLiteRows(TestSQLite):
    """A SQLite without JSON functions, and any database imagetags has no
    JSON aggregate for: the read is the image's row and a row per tag."""

    def setUp(self):
        self.useFixture(fixtures.MonkeyPatch(
            'imagetags.db.sql._JSON_TAGS', {
                k: v for k, v in sql_driver._JSON_TAGS.items()
                if k != 'sqlite'}))
        super().setUp()

    def test_the_read_is_one_row_whatever_the_tags(self):
        rows = self.read_a_c()
        self.assertEqual(3, len(rows), rows)
        self.assertEqual([(self.image, tag) for tag in 'ac'],
                         sorted(row[-2:] for row in rows
                                if row[-2] is not None))


class TestMySQL(SQLOnly, DriverContract, testtools.TestCase):
    backend = 'mysql'
    # read, then MariaDB's block: bump; write (and its COMMIT)
    change_cost = (3, 2)
    blocks = True       # False: MySQL's changes

    def setUp(self):
        super().setUp()
        self.use_blocks()

    def use_blocks(self):
        if not self.blocks:
            self.driver.use_server(mariadb=False, galera=False)

    def test_a_mariadb_url_is_served_as_mysql(self):
        # SQLAlchemy names the dialect of a mariadb:// URL "mariadb": the
        # driver must still compare tags exactly and end its transactions.
        options = self.conf_dir.options
        url = sa.engine.make_url(options['database']['connection'])
        options = it_fixtures.merge(options, {'database': {
            'connection': url.set(drivername='mariadb+' + (
                url.get_driver_name())).render_as_string(
                    hide_password=False)}})
        self.driver = db.load_driver(self.useFixture(
            it_fixtures.ConfigDir(options)).conf())
        self.use_blocks()
        sent = []
        self.driver.on_sql = lambda sql: sql.startswith(
            'PREPARE ') or sent.append(sql)
        self.assertTrue(self.add('t'))
        self.assertTrue(self.add('T'))
        self.assertRaises(db.TagNotFound, self.delete, 't ')
        # Two changes of two round trips (the change with its COMMIT) and
        # an answer of one, in autocommit.
        self.assertEqual(5, len(sent), sent)
        self.assertEqual([[], ['COMMIT']] * 2 + [[]], [
            sql_driver.statements(s, self.driver.prepared)[1]
            for s in sent])
        self.assertEqual(['t', 'T'], self.tags())

    def test_connections_are_utf8(self):
        # oslo.db's utf8 (as Glance's), or the URL's utf8 or utf8mb4.
        url = sa.engine.make_url(self.conf_dir.options['database'][
            'connection'])
        for charset, expected in ((None, 'utf8mb3'), ('utf8', 'utf8mb3'),
                                  ('utf8mb4', 'utf8mb4')):
            options = it_fixtures.merge(self.conf_dir.options, {'database': {
                'connection': url.update_query_dict(
                    {'charset': charset} if charset else {}).render_as_string(
                        hide_password=False)}})
            self.driver = db.load_driver(self.useFixture(
                it_fixtures.ConfigDir(options)).conf())
            self.use_blocks()
            with self.driver.engine.connect() as conn:
                self.assertEqual(expected, conn.exec_driver_sql(
                    'SELECT @@character_set_client').scalar())
            self.image = it_fixtures.new_image(self.driver, owner=OWNER)
            for tag in ('\u00e9', '\u4e2d'):
                self.assertTrue(self.add(tag))
                self.assertEqual([tag], self.tags())
                self.assertTrue(self.delete(tag))
            self.assertEqual([], self.tags())

    def test_lock_timeout_is_set_on_its_connections(self):
        with self.engine().connect() as conn:
            self.assertEqual(1, conn.exec_driver_sql(
                'SELECT @@innodb_lock_wait_timeout').scalar())

    def terminate(self, dbapi_connection):
        """The server ends this PyMySQL connection."""
        with self.engine().connect() as admin:
            admin.exec_driver_sql('KILL %d' % dbapi_connection.thread_id())

    def test_connection_lost_between_the_first_connects_queries(self):
        self.lose_the_first_connect(
            ['SELECT VERSION()', '_isolation',
             '@@lower_case_table_names'], self.cursor_class(), 'cursorclass')

    def cursor_class(self):
        import pymysql.cursors
        return pymysql.cursors.Cursor

    def test_tags_cut_by_mariadb_are_read_as_rows(self):
        # MariaDB cuts a JSON_ARRAYAGG at group_concat_max_len (1 MB by
        # default): the tags are then read again as rows, never a 500.
        tags = ['t%d "\\' % n for n in range(10)]
        for tag in tags:
            self.add(tag)
        with self.next_connection() as conn:
            conn.dbapi_connection.cursor().execute(
                'SET SESSION group_concat_max_len = 16')
        sent = []
        self.driver.on_sql = sent.append
        self.assertFalse(self.add(tags[-1]))
        self.assertRaises(db.TagNotFound, self.delete, 'absent')
        self.delete(tags[0])
        self.assertTrue(self.add('new'))
        reads = [s for s in sent if 'UNION ALL' in s]
        if self.engine().dialect.is_mariadb:
            self.assertEqual(4, len(reads), sent)
        self.assertEqual(sorted(tags[1:] + ['new']), sorted(self.tags()))

    def test_connections_are_left_in_autocommit(self):
        # Reads end with nothing to commit; a helper's transaction is still
        # one (it starts its own) on such a connection.
        self.add('t')
        conn, _ = self.driver._connections.take()
        self.assertTrue(conn.dbapi_connection.get_autocommit())
        conn.close()    # to the pool, the helpers' only connection
        self.assertEqual(1, self.engine().pool.checkedin())
        # The image is inserted, then its member fails (NOT NULL).
        self.assertRaises(db_exc.DBError, self.driver.create_image,
                          'img-half', OWNER, members=[(None, 'accepted')])
        self.assertIsNone(self.driver.show_image('img-half'))
        self.assertEqual(['t'], self.tags())

    def prepares(self):
        """MariaDB's statements are prepared (MySQL's, and where the option
        is off, are not)."""
        return self.blocks and self.engine().dialect.is_mariadb and (
            self.conf_dir.conf().imagetags.prepared_statements)

    def test_statements_prepared_once_per_connection(self):
        sent = []
        self.driver.on_sql = sent.append
        for n in range(3):
            self.add('t%d' % n)
        self.delete('t0')
        # A member's request reads the membership too.
        self.assertTrue(self.add('m', image='img-shared', project=MEMBER))
        if not self.prepares():
            self.assertEqual([], [s for s in sent
                                  if s.startswith(('PREPARE', 'EXECUTE'))])
            return
        self.assertEqual(1, len([s for s in sent
                                 if s.startswith('PREPARE ')]), sent)
        self.assertTrue(all(s.startswith('EXECUTE ') for s in sent[1:]),
                        sent)
        # Every one of them ran: the member's read and change too.
        self.assertIn('EXECUTE imagetags_member USING %(image_id)s, '
                      '%(project)s', sent)
        self.assertEqual(['m'], self.tags('img-shared'))
        self.assertEqual(['t1', 't2'], self.tags())

    def test_lost_prepared_statements_are_prepared_again(self):
        # A session that lost them (a proxy's reset) is dropped and the
        # request retried on a fresh connection, never answered 500.
        self.add('a')
        with self.next_connection() as conn:
            for name in self.driver.prepared:
                conn.dbapi_connection.cursor().execute(
                    'DEALLOCATE PREPARE ' + name)
        self.add('b')
        self.delete('a')
        self.assertEqual(['b'], self.tags())
        self.assertEqual(bool(self.prepares()), bool(self.driver.prepared))


class TestMySQLdb(TestMySQL):
    """mysqlclient (``mysql+mysqldb://``), where it is installed."""
    dbapi = 'mysqldb'

    def setUp(self):
        try:
            import MySQLdb  # noqa: F401
        except ImportError as e:
            self.skipTest('mysqlclient is not installed (%s): pip install '
                          'mysqlclient, which builds against libmariadb-dev '
                          'or libmysqlclient-dev' % e)
        super().setUp()

    def cursor_class(self):
        import MySQLdb.cursors
        return MySQLdb.cursors.Cursor


class TestMySQLUnprepared(TestMySQL):
    options = {'imagetags': {'prepared_statements': False}}


class TestMySQLStatements(TestMySQL):
    """MySQL's changes (it has no compound statements), run on MariaDB."""
    change_cost = (4, 2)    # read, then lock; write; bump (and COMMIT)
    blocks = False


class TestPostgreSQL(SQLOnly, DriverContract, testtools.TestCase):
    backend = 'postgresql'
    change_cost = (3, 2)    # read, then lock; write and bump
    lock_timeout = '1s'

    def test_lock_timeout_is_set_on_its_connections(self):
        # Unless the prepared statements are off, as behind a transaction
        # pooler, where a session's SET would reach other clients.
        with self.engine().connect() as conn:
            self.assertEqual(self.lock_timeout, conn.exec_driver_sql(
                'SHOW lock_timeout').scalar())

    def test_a_tag_the_databases_encoding_cannot_store(self):
        # A LATIN1 database (initdb's default under a Latin-1 locale) cannot
        # store every tag: 400, where it was a 500; the tags it can store
        # are served.
        database = self.useFixture(it_fixtures.Database(
            'postgresql', create="ENCODING 'LATIN1' TEMPLATE template0 "
            "LC_COLLATE 'C' LC_CTYPE 'C'"))
        self.driver = db.load_driver(self.useFixture(it_fixtures.ConfigDir(
            it_fixtures.merge(database.options, self.options))).conf())
        self.image = it_fixtures.new_image(self.driver, owner=OWNER)
        e = self.assertRaises(db.InvalidTag, self.add, '\u4e2d')
        self.assertIn("database's encoding", str(e))
        self.assertRaises(db.TagNotFound, self.delete, '\u4e2d')
        self.assertTrue(self.add('\u00e9'))
        self.assertEqual(['\u00e9'], self.tags())
        self.assertTrue(self.delete('\u00e9'))

    def test_a_read_only_database_is_unavailable(self):
        # A standby, or a primary demoted by a failover: its sessions are
        # read-only. A change is retried on a new connection, then
        # Unavailable (503), never a 500; reads still answer.
        url = sa.engine.make_url(
            self.conf_dir.options['database']['connection'])
        self.add('a')

        def read_only(on):
            with self.engine().connect().execution_options(
                    isolation_level='AUTOCOMMIT') as conn:
                conn.exec_driver_sql('SET default_transaction_read_only = off')
                conn.exec_driver_sql(
                    'ALTER DATABASE %s SET default_transaction_read_only = '
                    '%s' % (url.database, on))
            self.driver._connections.release(close=True)
            self.engine().dispose()
        read_only('on')
        self.addCleanup(read_only, 'off')
        self.assertRaises(db.Unavailable, self.add, 'b')
        self.assertRaises(db.Unavailable, self.delete, 'a')
        self.assertRaises(db.TagNotFound, self.delete, 'b')
        self.assertFalse(self.add('a'))
        read_only('off')
        self.assertTrue(self.add('b'))
        self.assertEqual(['a', 'b'], self.tags())

    def test_a_url_without_a_driver_runs_on_psycopg2(self):
        # SQLAlchemy 2.1 takes postgresql:// as psycopg 3, which imagetags
        # does not run on (nor install).
        url = sa.engine.make_url(
            self.conf_dir.options['database']['connection'])
        self.driver = db.load_driver(self.useFixture(it_fixtures.ConfigDir(
            it_fixtures.merge(self.conf_dir.options, {'database': {
                'connection': url.set(drivername='postgresql')
                .render_as_string(hide_password=False)}}))).conf())
        self.addCleanup(self.driver.engine.dispose)
        self.assertEqual('psycopg2', self.driver.engine.dialect.driver)
        self.assertTrue(self.add('t', quota=-1))
        self.assertEqual(['t'], self.tags())

    def test_statements_prepared_once_per_connection(self):
        sent = []
        self.driver.on_sql = sent.append
        for n in range(3):
            self.add('t%d' % n)
        self.assertEqual(1, len([s for s in sent
                                 if s.startswith('PREPARE ')]), sent)
        self.assertTrue(all(s.startswith('EXECUTE ') for s in sent[1:]))

    def test_plans_kept_from_an_empty_table_use_the_live_tags(self):
        # A prepared statement's generic plan, made while image_tags is
        # empty, must find an image's live tags without walking its
        # soft-deleted rows (migration 0003's partial index).
        self.add('t')
        conn = self.engine().raw_connection()
        try:
            cursor = conn.dbapi_connection.cursor()
            cursor.execute('SET plan_cache_mode = force_generic_plan')
            # The read, and the write of each change (after its lock).
            plans = [self.driver._read_sql] + [
                trip.split('; ')[1] for trip in self.driver._one_trip.values()]
            if self.driver._prepare:
                prepare(self.driver, cursor, 'generic_')
                plans = [p.replace('imagetags_', 'generic_') for p in plans]
            for sql in plans:
                cursor.execute('EXPLAIN ' + sql, {
                    'project': OWNER, 'image_id': self.image,
                    'image': self.image, 'tag': 't', 'limit': 9,
                    'now': datetime.datetime(2030, 1, 1)})
                scans = [r[0] for r in cursor.fetchall()
                         if 'Scan' in r[0] and ' on image_tags' in r[0]]
                self.assertNotEqual([], scans, sql)
                for scan in scans:
                    self.assertIn('using ix_image_tags_live ', scan, sql)
        finally:
            conn.invalidate()
            conn.close()

    def test_lost_prepared_statements_are_prepared_again(self):
        # A session reset (DISCARD ALL, a pooler) drops them: the request
        # is retried on a fresh connection, never answered 500.
        self.add('a')
        with self.next_connection() as conn:
            conn.dbapi_connection.cursor().execute('DEALLOCATE ALL')
            conn.dbapi_connection.commit()
        self.add('b')
        self.delete('a')
        self.assertEqual(['b'], self.tags())

    def terminate(self, dbapi_connection):
        """The server ends this psycopg2 connection's backend."""
        with self.engine().connect() as admin:
            admin.execute(sa.text('SELECT pg_terminate_backend(:p)'),
                          {'p': dbapi_connection.get_backend_pid()})
            admin.commit()

    def test_connection_lost_during_the_first_connect(self):
        # SQLAlchemy's first connect runs the dialect's own queries; a
        # server that drops the connection then (as one stopping does) is
        # retried, never a 500.
        driver = db.load_driver(self.conf_dir.conf())
        self.addCleanup(driver.engine.dispose)
        dropped = []

        def drop_once(dbapi_connection, record):
            # The server ends this connection before the dialect's queries.
            if not dropped:
                dropped.append(True)
                self.terminate(dbapi_connection)

        sa.event.listen(driver.engine, 'first_connect', drop_once,
                        insert=True)
        self.assertTrue(driver.add_tag(ctx(OWNER), self.image, 't', 128,
                                       allow))
        self.assertEqual([True], dropped)
        self.assertEqual(['t'], self.tags())

    def test_connection_lost_between_the_first_connects_queries(self):
        import psycopg2.extensions
        self.lose_the_first_connect(
            ['pg_catalog.version()', 'standard_conforming_strings',
             'current_schema()'], psycopg2.extensions.cursor,
            'cursor_factory')


class TestPostgreSQLUnprepared(TestPostgreSQL):
    options = {'imagetags': {'prepared_statements': False}}
    lock_timeout = '0'

    def test_statements_prepared_once_per_connection(self):
        sent = []
        self.driver.on_sql = sent.append
        self.add('t')
        self.assertEqual([], [s for s in sent if 'PREPARE' in s or
                              'EXECUTE' in s])
