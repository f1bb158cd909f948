"""Schema migrations (alembic) for a database that imagetags manages.

imagetags keeps its own version table, so it never mistakes a Glance
database (which has ``alembic_version``) for one of its own, and refuses to
touch a database with an ``images`` table that it did not create. A SQLite
database it creates is put in WAL mode.
"""
import os

from alembic import command
from alembic import config
from alembic import migration
import sqlalchemy as sa

VERSION_TABLE = 'imagetags_alembic_version'


class NotManaged(Exception):
    pass


def _config(connection):
    cfg = config.Config()
    cfg.set_main_option('script_location',
                        os.path.join(os.path.dirname(__file__), 'alembic'))
    cfg.attributes['connection'] = connection
    return cfg


def version(engine):
    with engine.connect() as conn:
        return migration.MigrationContext.configure(
            conn, opts={'version_table': VERSION_TABLE}).get_current_revision()


def upgrade(engine, revision='head'):
    with engine.begin() as conn:
        tables = sa.inspect(conn).get_table_names()
        if 'images' in tables and VERSION_TABLE not in tables:
            raise NotManaged(
                'This database has an images table that imagetags did not '
                'create (a Glance database?); imagetags uses it as it is and '
                'never migrates it.')
        command.upgrade(_config(conn), revision)
    if engine.dialect.name == 'sqlite':
        # Write-ahead logging (kept in the file): readers never wait for a
        # writer, and a commit syncs the log only. Outside any transaction.
        conn = engine.raw_connection()
        try:
            conn.cursor().execute('PRAGMA journal_mode=WAL')
        finally:
            conn.close()
