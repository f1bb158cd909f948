"""The drivers under test: a configuration directory and a database each.

Each SQL backend gets a database of its own (SQLite: a file in the work
directory; MariaDB/PostgreSQL: ``imagetags_bench_<hex>``, created here and
dropped at the end) with imagetags' schema (the migrations, as ``db sync``)
and the floor app's table, ``bench_floor``. A backend that cannot be reached
is skipped, with the reason printed.
"""
import os
import shutil
import uuid

import sqlalchemy as sa

from imagetags import conf as it_conf
from imagetags import db

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
PASTE_INI = os.path.join(ROOT, 'etc', 'imagetags', 'api-paste.ini')
PIPELINE = 'noauth'
OWNER = 'P'
IDENTITY = {'X-Identity-Status': 'Confirmed', 'X-Roles': 'member,reader',
            'X-Project-Id': OWNER, 'X-User-Id': 'U'}
FLOOR_TABLE = 'bench_floor'
# Process names of the database servers, for their CPU time.
DB_PROCESSES = {'mysql': ('mariadbd', 'mysqld'), 'postgresql': ('postgres',)}
LABELS = {'memory': 'memory', 'sqlite': 'SQLite', 'mysql': 'MariaDB',
          'postgresql': 'PostgreSQL'}


class Backend:
    def __init__(self, name, settings, workdir):
        self.name = name
        self.label = LABELS[name]
        self.settings = settings
        self.config_dir = os.path.join(workdir, 'etc-' + name)
        self.conf_file = os.path.join(self.config_dir, 'imagetags.conf')
        self.url = None          # the database, None for memory
        self.skip = None         # why it is skipped, if it is
        self._drop = None
        self._driver = None

    @property
    def is_sql(self):
        return self.name != 'memory'

    @property
    def db_processes(self):
        return DB_PROCESSES.get(self.name, ())

    def prepare(self):
        """Database, schema, floor table and configuration; or set .skip."""
        os.makedirs(self.config_dir, exist_ok=True)
        try:
            if self.name == 'sqlite':
                path = os.path.join(self.config_dir, 'imagetags.sqlite')
                if os.path.exists(path):
                    os.unlink(path)
                self.url = 'sqlite:///' + path
            elif self.is_sql:
                self.url = self._create_server_database()
        except Exception as e:  # noqa: any failure means: skip, say why
            self.skip = '%s not reachable: %s' % (
                self.label, str(getattr(e, 'orig', e)).splitlines()[0])
            return False
        shutil.copy(PASTE_INI, os.path.join(self.config_dir, 'api-paste.ini'))
        with open(self.conf_file, 'w') as f:
            f.write('[DEFAULT]\nstate_path = %s\n\n[imagetags]\ndriver = %s\n'
                    % (self.config_dir, 'sql' if self.is_sql else 'memory'))
            if self.is_sql:
                f.write('\n[database]\nconnection = %s\n' % self.url)
        if self.is_sql:
            from imagetags.db.sql import migration
            migration.upgrade(self.driver().engine)
            engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool)
            with engine.begin() as conn:
                conn.execute(sa.text(
                    'CREATE TABLE %s (k VARCHAR(255) NOT NULL PRIMARY KEY)'
                    % FLOOR_TABLE + (' ENGINE=InnoDB'
                                     if self.name == 'mysql' else '')))
            engine.dispose()
        return True

    def _create_server_database(self):
        server = (self.settings.mysql_url if self.name == 'mysql'
                  else self.settings.pg_url)
        admin_url = sa.engine.make_url(server)
        name = 'imagetags_bench_' + uuid.uuid4().hex[:8]
        engine = sa.create_engine(admin_url, isolation_level='AUTOCOMMIT',
                                  poolclass=sa.pool.NullPool,
                                  connect_args={'connect_timeout': 5})
        with engine.connect() as conn:
            conn.execute(sa.text('CREATE DATABASE ' + name))

        def drop():
            with engine.connect() as conn:
                if self.name == 'postgresql':
                    conn.execute(sa.text(
                        'SELECT pg_terminate_backend(pid) FROM '
                        "pg_stat_activity WHERE datname = '%s' AND "
                        'pid <> pg_backend_pid()' % name))
                conn.execute(sa.text('DROP DATABASE IF EXISTS ' + name))
            engine.dispose()
        self._drop = drop
        return admin_url.set(database=name).render_as_string(
            hide_password=False)

    def conf(self):
        return it_conf.load([self.conf_file])

    def driver(self):
        """A driver of the bench process itself, to create images."""
        if self._driver is None:
            self._driver = db.load_driver(self.conf())
        return self._driver

    def new_images(self, count, prefix):
        """``count`` fresh private images of the caller's project.

        For the memory driver the ids are only made up here: each server
        process creates them in its own memory (see ``wsgi_apps``).
        """
        ids = ['%s-%s' % (prefix, uuid.uuid4().hex[:20])[:36]
               for _ in range(count)]
        if self.is_sql:
            for image_id in ids:
                self.driver().create_image(image_id, OWNER, 'private')
        return ids

    def cleanup(self):
        if self._driver is not None and self.is_sql:
            self._driver.engine.dispose()
        if self._drop is not None:
            try:
                self._drop()
            except Exception as e:  # noqa: best effort
                print('could not drop the %s bench database: %s'
                      % (self.label, e))
            self._drop = None


def find_tags_app(app):
    """The ``TagsApp`` at the end of a loaded Paste pipeline."""
    from imagetags import app as it_app
    seen = set()
    while app is not None and id(app) not in seen:
        if isinstance(app, it_app.TagsApp):
            return app
        seen.add(id(app))
        app = next((getattr(app, a) for a in ('api', 'app', 'application')
                    if getattr(app, a, None) is not None), None)
    raise LookupError('no TagsApp in the pipeline')
