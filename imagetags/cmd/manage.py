"""``imagetags-manage``: schema and image records of imagetags' own database.

    imagetags-manage [--config-file F] db sync | db version
    imagetags-manage image create --owner PROJECT [--visibility private]
                     [--id UUID] [--name NAME] [--member PROJECT[:STATUS]]
    imagetags-manage image show ID      (the image and its tags, as JSON)
    imagetags-manage image delete ID

Images can only be created in a database that ``db sync`` made: a Glance
database gets its images from Glance.
"""
import argparse
import json
import sys
import uuid

from oslo_config import cfg
from oslo_db import exception as db_exc
import sqlalchemy as sa

from imagetags import conf as it_conf
from imagetags.db import sql
from imagetags.db.sql import migration


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='imagetags-manage', description=__doc__.splitlines()[0])
    parser.add_argument('--config-file', action='append', default=[])
    sub = parser.add_subparsers(dest='group', required=True)
    dbp = sub.add_parser('db').add_subparsers(dest='action', required=True)
    dbp.add_parser('sync')
    dbp.add_parser('version')
    imp = sub.add_parser('image').add_subparsers(dest='action', required=True)
    create = imp.add_parser('create')
    create.add_argument('--owner', required=True)
    create.add_argument('--visibility', default='shared',
                        choices=['private', 'public', 'shared', 'community'])
    create.add_argument('--id', default=None, type=_image_id)
    create.add_argument('--name', default=None)
    create.add_argument('--status', default='active')
    create.add_argument('--member', action='append', default=[],
                        help='PROJECT or PROJECT:STATUS (default accepted)')
    for action in ('show', 'delete'):
        imp.add_parser(action).add_argument('id')
    args = parser.parse_args(argv)
    try:
        return _run(args, sql.SQLDriver(it_conf.load(args.config_file)))
    except (ValueError, OSError, cfg.Error, db_exc.DBError,
            sa.exc.SQLAlchemyError) as e:
        # A configuration the driver refuses, a SQLite directory it cannot
        # make, a database it cannot reach or use: one line, not a
        # traceback.
        sys.exit('imagetags-manage: %s' % (str(e).strip().splitlines() or [
            type(e).__name__])[0])


def _run(args, driver):
    if args.group == 'db':
        if args.action == 'sync':
            try:
                migration.upgrade(driver.engine)
            except migration.NotManaged as e:
                sys.exit(str(e))
        print(migration.version(driver.engine))
        return 0
    if migration.version(driver.engine) is None:
        sys.exit('This database is not managed by imagetags: run '
                 '"imagetags-manage db sync" on a database of its own.')
    if args.action == 'create':
        image_id = args.id or str(uuid.uuid4())
        members = [(m.partition(':')[0], m.partition(':')[2] or 'accepted')
                   for m in args.member]
        try:
            driver.create_image(image_id, args.owner, args.visibility,
                                args.status, args.name, members=members)
        except db_exc.DBDuplicateEntry:
            sys.exit('Image %s exists' % image_id)
        print(image_id)
    elif args.action == 'show':
        image = driver.show_image(args.id)
        if image is None:
            sys.exit('No image %s' % args.id)
        print(json.dumps(image, default=str, indent=2, ensure_ascii=False))
    else:
        driver.delete_image(args.id)
    return 0


def _image_id(value):
    """Glance's ``images.id``: at most 36 characters."""
    if not 0 < len(value) <= 36:
        raise argparse.ArgumentTypeError('an image id has 1 to 36 characters')
    return value
