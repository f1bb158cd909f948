"""SQL driver on Glance's schema: one short transaction per tag change.

Every change runs the same three statements, on every backend:

1. ``UPDATE images SET updated_at`` on the live image: takes the image's row
   lock (MySQL/PostgreSQL) or the database write lock (SQLite) first, so
   writers of one image are serialised; no row means 404.
2. ``SELECT`` the image, the caller's membership and the live tags, read
   after the lock, so the tag set and the quota count are current.
3. ``INSERT`` the tag, or soft-delete every live copy of it (by row id, so
   MySQL's case-insensitive collations never widen the match).

Visibility, policy, existence and quota are decided in Python between 2 and
3, with exact (case-sensitive) string comparison. Anything that ends without
a change (404, 403, 413, a PUT of a tag already there) rolls back, so the
``updated_at`` bump of step 1 is only kept with a real change. Lock
contention and lost connections are retried as a whole transaction; past the
retries the request answers 503.
"""
import datetime
import logging
import os

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
READ = (sa.select(
    *_IMAGE_COLUMNS,
    sa.select(_members.c.member)
    .where(_members.c.image_id == _images.c.id,
           _members.c.member == sa.bindparam('project'),
           _members.c.deleted == _LIVE)
    .limit(1).scalar_subquery().label('member'),
    _tags.c.id.label('tag_id'), _tags.c.value.label('tag'))
    .select_from(_images.outerjoin(_tags, sa.and_(
        _tags.c.image_id == _images.c.id, _tags.c.deleted == _LIVE)))
    .where(_images.c.id == sa.bindparam('image_id'),
           _images.c.deleted == _LIVE)
    .order_by(_tags.c.id))
INSERT = _tags.insert().values(
    image_id=sa.bindparam('image_id'), value=sa.bindparam('tag'),
    created_at=sa.bindparam('now'), updated_at=sa.bindparam('now'),
    deleted=False)
SOFT_DELETE = (_tags.update()
               .where(_tags.c.id.in_(sa.bindparam('ids', expanding=True)))
               .values(deleted=True, deleted_at=sa.bindparam('now'),
                       updated_at=sa.bindparam('now')))

# Lock contention that oslo.db does not already raise as DBDeadlock.
_CONTENTION = ('database is locked', 'could not serialize access',
               'deadlock detected', 'Lock wait timeout', 'Deadlock found')
# Connection failures that oslo.db does not raise as DBConnectionError: its
# PostgreSQL filter knows only libpq's old "could not connect to server";
# libpq 14 and later say 'connection to server at "<host>", port <n>
# failed: ...' (refused, starting up, shutting down, too many clients).
_UNREACHABLE = ('could not connect to server', 'connection to server at ',
                'connection to server on socket ')


def _reconnecting(method):
    """Once more on a lost connection (the pool does not ping first)."""
    return oslo_db_api.wrap_db_retry(max_retries=1, retry_interval=0.01,
                                     retry_on_disconnect=True)(method)


def _lean(engine):
    """Drop the round trips and work that these transactions do not need.

    - oslo.db pings every connection it checks out (pool_pre_ping): a round
      trip per request. A connection lost meanwhile fails the transaction's
      first statement instead, and the whole transaction is retried.
    - The pool rolls back every connection it gets back, even right after
      ``engine.begin()`` committed or rolled back (a ROLLBACK round trip with
      PyMySQL); every transaction here has ended by then.
    - oslo.db gives a SQLite file a NullPool: every request opened the file
      and read the schema again. Pool its connections, as SQLAlchemy itself
      does for file databases.

    These are private attributes of SQLAlchemy's pool (2.0, 2.1):
    ``imagetags.tests.test_driver`` checks that they still exist.
    """
    pool = engine.pool
    pool._pre_ping = False
    pool._reset_on_return = sa.pool.base.reset_none
    if engine.dialect.name == 'sqlite' and isinstance(pool, sa.pool.NullPool):
        engine.pool = sa.pool.QueuePool(
            pool._creator, pool_size=5, max_overflow=10,
            recycle=pool._recycle, pre_ping=False,
            reset_on_return=sa.pool.base.reset_none, _dispatch=pool.dispatch,
            dialect=pool._dialect)
    return engine


class _NoChange(Exception):
    """Roll back: the request ends without changing anything."""


class SQLDriver(db.Driver):
    def __init__(self, conf):
        super().__init__(conf)
        url = sa.engine.make_url(conf.database.connection)
        if url.get_backend_name() == 'sqlite' and url.database:
            # The embedded default: make its state directory. A busy wait of
            # 1 s (pysqlite's default is 5 s) per attempt keeps the retries
            # of a locked database well inside a WSGI server's timeout.
            os.makedirs(os.path.dirname(os.path.abspath(url.database)),
                        exist_ok=True)
            if 'timeout' not in url.query:
                url = url.update_query_dict({'timeout': '1'})
        self._tm = enginefacade.transaction_context()
        # max_retries=0: no connection test at start-up (that is all oslo.db
        # uses it for), so that a process started while the database is down
        # answers 503 until it is back instead of failing to start (which
        # stops gunicorn altogether) or waiting max_retries x retry_interval.
        self._tm.configure(**dict(
            conf.database.items(), max_retries=0, thread_checkin=False,
            connection=url.render_as_string(hide_password=False)))
        self.engine = _lean(self._tm.writer.get_engine())
        self._no_nul = self.engine.dialect.name == 'postgresql'
        self._change = oslo_db_api.wrap_db_retry(
            max_retries=conf.imagetags.db_retries, retry_interval=0.01,
            inc_retry_interval=True, max_retry_interval=0.25, jitter=True,
            retry_on_deadlock=True, retry_on_disconnect=True,
            exception_checker=_is_contention)(self._change_once)

    def add_tag(self, ctx, image_id, tag, quota, check):
        def apply(conn, params, live):
            if tag in live.values():
                raise _NoChange()
            count = len(set(live.values())) + 1
            if 0 <= quota < count:
                raise db.TagLimitExceeded(count, quota)
            if self._no_nul and '\x00' in tag:
                raise db.InvalidTag('PostgreSQL cannot store a tag that '
                                    'contains a NUL character.')
            conn.execute(INSERT, dict(params, tag=tag))
        return self._run(ctx, image_id, check, apply)

    def delete_tag(self, ctx, image_id, tag, check):
        def apply(conn, params, live):
            ids = [i for i, value in live.items() if value == tag]
            if not ids:
                raise db.TagNotFound(tag)
            # Only its own parameters: any other key naming a column of
            # image_tags ("image_id") would be SET by the UPDATE too.
            conn.execute(SOFT_DELETE, {'ids': ids, 'now': params['now']})
        self._run(ctx, image_id, check, apply)

    def _run(self, ctx, image_id, check, apply):
        try:
            return self._change(ctx, image_id, check, apply)
        except _NoChange:
            return False
        except (db_exc.DBDeadlock, db_exc.DBConnectionError) as e:
            LOG.warning('Database unavailable or busy: %s', e)
            raise db.Unavailable() from e
        except (db_exc.DBError, sa.exc.SQLAlchemyError) as e:
            if _is_contention(e):
                LOG.warning('Database unavailable or busy past the '
                            'retries: %s', e)
                raise db.Unavailable() from e
            raise

    def _change_once(self, ctx, image_id, check, apply):
        params = {'image_id': image_id, 'now': _now(),
                  'project': ctx.project_id}
        with self.engine.begin() as conn:
            if conn.execute(BUMP, params).rowcount < 1:
                raise db.ImageNotFound(image_id)
            rows = [r for r in conn.execute(READ, params)
                    if r.id == image_id]
            if not rows:
                raise db.ImageNotFound(image_id)
            image = db.visible(_image(rows[0]), ctx,
                               rows[0].member == ctx.project_id)
            check(image)
            apply(conn, params, {r.tag_id: r.tag for r in rows
                                 if r.tag_id is not None})
        return True

    @_reconnecting
    def show_image(self, image_id):
        with self.engine.connect() as conn:
            rows = [r for r in conn.execute(READ, {'image_id': image_id,
                                                   'project': None})
                    if r.id == image_id]
        if not rows:
            return None
        image = _image(rows[0])
        image['tags'] = [r.tag for r in rows if r.tag_id is not None]
        return image

    @_reconnecting
    def create_image(self, image_id, owner, visibility='shared',
                     status='active', name=None, protected=False,
                     members=()):
        now = _now()
        with self.engine.begin() as conn:
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
        with self.engine.begin() as conn:
            conn.execute(_tags.update().where(
                _tags.c.image_id == image_id, _tags.c.deleted == _LIVE
            ).values(**gone))
            conn.execute(_images.update().where(
                _images.c.id == image_id).values(status='deleted', **gone))


def _image(row):
    return {c.name: getattr(row, c.name) for c in _IMAGE_COLUMNS}


def _is_contention(exc):
    if isinstance(exc, db_exc.DBDeadlock):
        return True
    return isinstance(exc, (db_exc.DBError, sa.exc.SQLAlchemyError)) and any(
        text in str(exc) for text in _CONTENTION + _UNREACHABLE)


def _now():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
