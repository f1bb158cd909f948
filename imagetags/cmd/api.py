"""``imagetags-api``: the development server (wsgiref, threaded).

Serves the ``noauth`` pipeline of ``etc/imagetags/api-paste.ini`` by
default, on the embedded SQLite database, whose schema it creates on start.
For production use a WSGI server with ``imagetags.wsgi:application`` (uwsgi:
``imagetags.wsgi.api:application``).
"""
import argparse
import os
import socketserver
from wsgiref import simple_server

from imagetags import conf as it_conf
from imagetags.db import sql
from imagetags.db.sql import migration
from imagetags import wsgi


class _Server(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    daemon_threads = True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config-dir', default=_default_config_dir())
    parser.add_argument('--pipeline', default='noauth')
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=9292)
    args = parser.parse_args(argv)
    conf_file = os.path.join(args.config_dir, 'imagetags.conf')
    conf = it_conf.load([conf_file] if os.path.exists(conf_file) else [])
    if conf.imagetags.driver == 'sql' and conf.database.connection.startswith(
            'sqlite'):
        migration.upgrade(sql.SQLDriver(conf).engine)
    app = wsgi.load_app(args.config_dir, args.pipeline)
    server = simple_server.make_server(args.host, args.port, app,
                                       server_class=_Server)
    print('imagetags (%s pipeline) on http://%s:%d/, database %s'
          % (args.pipeline, args.host, args.port, conf.database.connection),
          flush=True)
    server.serve_forever()


def _default_config_dir():
    if os.path.exists(os.path.join('etc', 'imagetags', 'api-paste.ini')):
        return os.path.join('etc', 'imagetags')
    return '/etc/imagetags'
