"""A tiny stand-in for the rest of an image API, behind the imagetags filter.

Real clients call more than the tag endpoints: version discovery (``GET /``
300, ``GET /versions`` 200), ``GET /v2/schemas/image`` and the metadef schemas
(glanceclient's CLI), ``GET /v2/images/{id}`` (glanceclient's
``image-tag-update`` printout, openstackclient's image lookup, Tempest's
``show_image``). This app answers those in Glance's formats, reading the same
database as imagetags through the driver's ``show_image``, so that a paste
pipeline ``... imagetags standin`` puts imagetags in filter mode in front of
an image API, as in Glance.

It never answers a tag call: a request for ``.../tags...`` that reaches it
gets a 500 saying so. Every request it sees is appended (``METHOD PATH``) to
the file named by the paste option ``calls_log``, if set, so tests can check
what passed the filter.

    [app:standin]
    paste.app_factory = imagetags.tests.standin:app_factory
    calls_log = %(here)s/standin-calls.log
"""
import datetime
import json
import os
import re

import webob
import webob.exc

from imagetags import db
from imagetags import deploy

VERSIONS = ['v2.%d' % n for n in range(17, -1, -1)]
IMAGE_PATH = re.compile(r'^/v2/images/([^/]+)$')

_NULL_STRING = {'type': ['null', 'string']}
_NULL_INT = {'type': ['null', 'integer']}
_DATE = {'type': 'string'}

# The properties Glance 33's image schema declares for what we serve, with
# Glance's types, so that glanceclient's warlock models validate our images.
IMAGE_SCHEMA = {
    'name': 'image',
    'additionalProperties': {'type': 'string'},
    'links': [{'href': '{self}', 'rel': 'self'},
              {'href': '{file}', 'rel': 'enclosure'},
              {'href': '{schema}', 'rel': 'describedby'}],
    'properties': {
        'id': {'type': 'string', 'pattern': (
            '^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}'
            '-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$')},
        'name': {'type': ['null', 'string'], 'maxLength': 255},
        'status': {'type': 'string', 'readOnly': True, 'enum': [
            'queued', 'saving', 'active', 'killed', 'deleted', 'uploading',
            'importing', 'pending_delete', 'deactivated']},
        'visibility': {'type': 'string', 'enum': [
            'community', 'public', 'private', 'shared']},
        'protected': {'type': 'boolean'},
        'os_hidden': {'type': 'boolean'},
        'checksum': dict(_NULL_STRING, readOnly=True, maxLength=32),
        'os_hash_algo': dict(_NULL_STRING, readOnly=True, maxLength=64),
        'os_hash_value': dict(_NULL_STRING, readOnly=True, maxLength=128),
        'owner': dict(_NULL_STRING, maxLength=255),
        'size': dict(_NULL_INT, readOnly=True),
        'virtual_size': dict(_NULL_INT, readOnly=True),
        'container_format': {'type': ['null', 'string'], 'enum': [
            None, 'ami', 'ari', 'aki', 'bare', 'ovf', 'ova', 'docker',
            'compressed']},
        'disk_format': {'type': ['null', 'string'], 'enum': [
            None, 'ami', 'ari', 'aki', 'vhd', 'vhdx', 'vmdk', 'raw', 'qcow2',
            'vdi', 'iso', 'ploop']},
        'created_at': dict(_DATE, readOnly=True),
        'updated_at': dict(_DATE, readOnly=True),
        'tags': {'type': 'array',
                 'items': {'type': 'string', 'maxLength': 255}},
        'direct_url': {'type': 'string', 'readOnly': True},
        'min_ram': {'type': 'integer'},
        'min_disk': {'type': 'integer'},
        'self': {'type': 'string', 'readOnly': True},
        'file': {'type': 'string', 'readOnly': True},
        'stores': {'type': 'string', 'readOnly': True},
        'schema': {'type': 'string', 'readOnly': True},
        'locations': {'type': 'array'},
    },
}

METADEF_SCHEMAS = {
    'metadefs/namespace': {
        'name': 'namespace', 'additionalProperties': False,
        'properties': {'namespace': {'type': 'string', 'maxLength': 80},
                       'display_name': {'type': 'string'},
                       'description': {'type': 'string'},
                       'visibility': {'type': 'string',
                                      'enum': ['public', 'private']},
                       'protected': {'type': 'boolean'},
                       'owner': {'type': 'string'}},
        'required': ['namespace']},
    'metadefs/resource_type': {
        'name': 'resource_type_association', 'additionalProperties': False,
        'properties': {'name': {'type': 'string', 'maxLength': 80},
                       'prefix': {'type': 'string'},
                       'properties_target': {'type': 'string'}},
        'required': ['name']},
}


def app_factory(global_conf, **local_conf):
    calls_log = local_conf.pop('calls_log', None)
    conf = deploy.load_conf(global_conf, local_conf)
    return StandIn(db.load_driver(conf), calls_log)


def _iso(value):
    if isinstance(value, datetime.datetime):
        return value.strftime('%Y-%m-%dT%H:%M:%SZ')
    return value


def image_view(image):
    """An image in Glance's v2 format (``GET /v2/images/{id}``)."""
    view = {key: _iso(image.get(key)) for key in (
        'id', 'name', 'status', 'visibility', 'protected', 'os_hidden',
        'owner', 'min_disk', 'min_ram', 'disk_format', 'container_format',
        'size', 'virtual_size', 'checksum', 'created_at', 'updated_at')}
    view.update(protected=bool(view['protected']),
                os_hidden=bool(view['os_hidden']),
                min_disk=view['min_disk'] or 0, min_ram=view['min_ram'] or 0,
                tags=list(image['tags']), os_hash_algo=None,
                os_hash_value=None, self='/v2/images/%s' % image['id'],
                file='/v2/images/%s/file' % image['id'],
                schema='/v2/schemas/image')
    return view


class StandIn:
    def __init__(self, driver, calls_log=None):
        self.driver = driver
        self.calls_log = calls_log

    def __call__(self, environ, start_response):
        req = webob.Request(environ)
        if self.calls_log:
            with open(self.calls_log, 'a') as f:
                f.write('%s %s\n' % (req.method, req.path_qs))
        try:
            resp = self.route(req)
        except webob.exc.HTTPException as exc:
            resp = exc
        return resp(environ, start_response)

    def route(self, req):
        path = req.path_info
        if '/tags' in path:
            raise webob.exc.HTTPInternalServerError(
                explanation='A tag call reached the stand-in image API: '
                            '%s %s' % (req.method, req.path_qs))
        if req.method not in ('GET', 'HEAD'):
            raise webob.exc.HTTPMethodNotAllowed(headers=[('Allow', 'GET')])
        if path in ('', '/', '/versions'):
            return self.versions(req, 200 if path == '/versions' else 300)
        if path.startswith('/v2/schemas/'):
            name = path[len('/v2/schemas/'):]
            if name == 'image':
                return _json(IMAGE_SCHEMA)
            if name in METADEF_SCHEMAS:
                return _json(METADEF_SCHEMAS[name])
            raise webob.exc.HTTPNotFound()
        if path == '/v2/images':
            # Lookup by name (openstackclient's fallback): nothing found.
            return _json({'images': [], 'schema': '/v2/schemas/images',
                          'first': '/v2/images'})
        match = IMAGE_PATH.match(path)
        if match:
            image = self.driver.show_image(match.group(1))
            if image is None:
                raise webob.exc.HTTPNotFound(
                    explanation='No image found with ID %s' % match.group(1))
            return _json(image_view(image))
        raise webob.exc.HTTPNotFound()

    def versions(self, req, status):
        href = req.application_url + '/v2/'
        return _json({'versions': [
            {'id': v, 'status': 'CURRENT' if v == VERSIONS[0] else 'SUPPORTED',
             'links': [{'rel': 'self', 'href': href}]} for v in VERSIONS]},
            status=status)


def _json(doc, status=200):
    return webob.Response(json.dumps(doc), status=status,
                          content_type='application/json', charset='UTF-8')


def calls(path):
    """The ``(method, path)`` pairs a stand-in logged to ``path``."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [tuple(line.rstrip('\n').split(' ', 1)) for line in f]
