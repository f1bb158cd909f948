"""Paste factories: the app, the filter, the context filter and the root.

Configuration comes from the paste section's ``oslo_config_file`` (one or
more paths, comma separated) or ``oslo_config_project``; each factory call
builds its own ConfigOpts, so differently configured apps share a process.
"""
import json

import webob
import webob.exc

from imagetags import app
from imagetags import conf as it_conf
from imagetags import context
from imagetags import db
from imagetags import notifier
from imagetags import policy

VERSIONS = ['v2.%d' % n for n in range(18, -1, -1)]


def load_conf(global_conf, local_conf):
    settings = dict(global_conf, **local_conf)
    files = [f.strip() for f in settings.get('oslo_config_file', '').split(',')
             if f.strip()]
    return it_conf.load(files, settings.get('oslo_config_project',
                                            'imagetags'))


def build(conf, next_app=None):
    return app.TagsApp(conf, policy.make_enforcer(conf),
                       db.load_driver(conf), next_app, notifier.make(conf))


def app_factory(global_conf, **local_conf):
    return build(load_conf(global_conf, local_conf))


def filter_factory(global_conf, **local_conf):
    conf = load_conf(global_conf, local_conf)
    return lambda next_app: build(conf, next_app)


def context_filter_factory(global_conf, **local_conf):
    return context.ContextMiddleware


def root_factory(loader, global_conf, **local_conf):
    """``[composite:main]``: versions and healthcheck, then the pipeline."""
    def get(name):
        return name and loader.get_app(name, global_conf=global_conf)
    return Root(get(local_conf['api']), get(local_conf.get('healthcheck')),
                get(local_conf.get('versions')) or versions)


def versions_factory(global_conf, **local_conf):
    return versions


class Root:
    """Version discovery (``GET /`` 300, ``GET /versions`` 200) and
    ``/healthcheck`` without authentication, as Glance; the rest to ``api``.
    """

    def __init__(self, api, healthcheck=None, versions=None):
        self.api = api
        self.healthcheck = healthcheck
        self.versions = versions

    def __call__(self, environ, start_response):
        path = environ.get('PATH_INFO', '')
        if self.healthcheck is not None and path == '/healthcheck':
            return self.healthcheck(environ, start_response)
        if path in ('', '/', '/versions') and environ['REQUEST_METHOD'] in (
                'GET', 'HEAD'):
            return self.versions(environ, start_response)
        return self.api(environ, start_response)


def versions(environ, start_response):
    """The version document: the only answer that holds a URL, so the one
    that goes through ``http_proxy_to_wsgi`` in api-paste.ini."""
    req = webob.Request(environ)
    href = req.application_url + '/v2/'
    doc = {'versions': [
        {'id': v, 'status': 'CURRENT' if v == VERSIONS[0] else 'SUPPORTED',
         'links': [{'rel': 'self', 'href': href}]} for v in VERSIONS]}
    resp = webob.Response(json.dumps(doc), content_type='application/json',
                          charset='UTF-8',
                          status=200 if req.path_info == '/versions' else 300)
    return resp(environ, start_response)
