"""imagetags inside a real Glance 33, compared with a stock Glance.

Each test class starts two Glance servers from one install (gunicorn on
127.0.0.1), each on a database of its own made by ``glance-manage db_sync``:
``stock`` (Glance's keystone pipeline minus ``authtoken``) and ``tags``
(the same pipeline with the imagetags filter, SQL driver on Glance's
database, right after Glance's ``context`` filter). Every test sends the
same requests to both, images being created through Glance's API with the
same ids on both, and compares the answers:

1. tag PUT/DELETE are answered by imagetags (behaviours where imagetags
   deliberately differs from Glance: Unicode, ``_method``, 4-byte characters,
   ``%2F``, no-op PUT, long request ids);
2. Glance's own ``GET /v2/images/{id}`` and ``?tag=`` list show every change
   at once;
3. every other call is answered as the stock Glance answers it;
4. the caller x image matrix (glance-behaviour.md section 2) gives the same
   statuses, headers and bodies.

The tests skip (with the reason) when Glance is not installed, so that the
plain unit test run passes; ``tox -e glance`` installs it.
"""
import json
import os
import re
import time
import urllib.parse
import uuid

import fixtures
import testtools

from imagetags.tests.glance import server

QUOTA = 5
OWNER, ADMIN_P, OTHER = 'p-owner', 'p-admin', 'p-other'
ACC, PEND = 'p-shared-acc', 'p-shared-pend'


def _ident(roles, project, user='u1', status='Confirmed',
           project_header='X-Project-Id'):
    h = {'X-Identity-Status': status, 'X-Roles': roles, 'X-User-Id': user}
    if project is not None:
        h[project_header] = project
    return h


# glance-behaviour.md section 2, plus its extra identity shapes.
CALLERS = {
    'admin': _ident('admin,member,reader', ADMIN_P),
    'owner_member': _ident('member,reader', OWNER),
    'owner_reader': _ident('reader', OWNER),
    'other': _ident('member,reader', OTHER),
    'shared_acc': _ident('member,reader', ACC),
    'shared_pend': _ident('member,reader', PEND),
    'owner_member_only': _ident('member', OWNER),
    'owner_tenant_id': _ident('member,reader', OWNER,
                              project_header='X-Tenant-Id'),
    'owner_upper_roles': _ident('Member,Reader', OWNER),
    'owner_no_roles': _ident('', OWNER),
    'member_no_project': _ident('member,reader', None),
    'anon': {},
    'unconfirmed': _ident('member,reader', OWNER, status='confirmed'),
}
ADMIN = CALLERS['admin']
OWNER_M = CALLERS['owner_member']

KINDS = ('private', 'public', 'shared', 'community', 'deactivated',
         'deleted', 'unknown', 'upper', 'abc')
LIVE = KINDS[:5]
# PUT status per caller and image kind, from glance-behaviour.md section 2
# (a sanity check that the stock Glance is the baseline we think it is).
_MODIFY = dict.fromkeys(LIVE, 204)
_READ_ONLY = dict.fromkeys(LIVE, 403)
_OUTSIDER = dict(private=404, public=403, shared=404, community=403,
                 deactivated=404)
_MEMBER = dict(_OUTSIDER, shared=403)
EXPECTED_PUT = {
    'admin': _MODIFY, 'owner_member': _MODIFY, 'owner_reader': _READ_ONLY,
    'other': _OUTSIDER, 'shared_acc': _MEMBER, 'shared_pend': _MEMBER,
    'owner_member_only': _MODIFY, 'owner_tenant_id': _MODIFY,
    'owner_upper_roles': _MODIFY, 'owner_no_roles': dict.fromkeys(LIVE, 404),
    'member_no_project': _OUTSIDER,
    'anon': dict.fromkeys(KINDS, 401), 'unconfirmed': dict.fromkeys(KINDS, 401),
}
for _expected in EXPECTED_PUT.values():
    for _kind in KINDS:
        _expected.setdefault(_kind, 404)

JSON = {'Accept': 'application/json'}
PATCH_TYPE = 'application/openstack-images-v2.1-json-patch'
_TIMES = re.compile(rb'"(created_at|updated_at)": "[^"]*"')


class GlancePair(fixtures.Fixture):
    """A stock Glance and a Glance with the imagetags filter, on copies of
    one freshly synced database of the given backend."""

    def __init__(self, backend):
        super().__init__()
        self.backend = backend

    def _setUp(self):
        db = self.useFixture(server.GlanceDatabase(self.backend))
        self.stock = self.useFixture(server.GlanceServer(
            db.new(), server.STOCK, quota=QUOTA))
        self.tags = self.useFixture(server.GlanceServer(
            db.new(), server.IMAGETAGS, quota=QUOTA))


class Resp:
    """A response, normalised so that two servers' answers compare equal:
    request ids, timestamps and the server's own address are masked."""

    def __init__(self, srv, raw):
        self.status, self.headers, self.raw = raw
        self.body = _TIMES.sub(rb'"\1": "T"', self.raw).replace(
            srv.url.encode(), b'BASE')
        self.location = self.headers.get('location', '').replace(
            srv.url, 'BASE')

    def json(self):
        return json.loads(self.raw)

    def key(self):
        return (self.status, self.headers.get('content-type'),
                self.headers.get('allow'), self.location,
                'x-openstack-request-id' in self.headers, self.body)

    def __repr__(self):
        return '<%d %r>' % (self.status, self.raw[:300])


class GlanceTest(testtools.TestCase):
    BACKEND = 'sqlite'
    pair = None
    skip_reason = None

    @classmethod
    def missing(cls):
        return server.glance_missing()

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.skip_reason = cls.missing()
        if cls.skip_reason is None:
            pair = GlancePair(cls.BACKEND)
            pair.setUp()
            cls.pair = pair

    @classmethod
    def tearDownClass(cls):
        if cls.pair is not None:
            cls.pair.cleanUp()
            cls.pair = None
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        if self.skip_reason:
            self.skipTest(self.skip_reason)
        self.stock, self.tags = self.pair.stock, self.pair.tags
        self.servers = (self.stock, self.tags)
        self.addOnException(self._attach_logs)

    def _attach_logs(self, exc_info):
        for name, srv in (('stock', self.stock), ('tags', self.tags)):
            self.addDetail('%s-glance-log' % name,
                           testtools.content.text_content(srv.log()))

    # -- requests --------------------------------------------------------
    def call(self, srv, method, path, who=ADMIN, body=None, headers=None):
        h = dict(JSON)
        h.update(who)
        h.update(headers or {})
        return Resp(srv, srv.request(method, path, h, body))

    def both(self, method, path, who=ADMIN, body=None, headers=None):
        """The same request to both servers: (stock, tags) responses."""
        return tuple(self.call(s, method, path, who, body, headers)
                     for s in self.servers)

    def same(self, method, path, who=ADMIN, body=None, headers=None,
             status=None):
        """Both servers answer alike (and with ``status`` if given)."""
        stock, tags = self.both(method, path, who, body, headers)
        self.assertEqual(stock.key(), tags.key(),
                         '%s %s answered differently' % (method, path))
        if status is not None:
            self.assertEqual(status, stock.status, '%s %s' % (method, path))
        return stock, tags

    def create(self, kind='private', tags=('pre',), image_id=None):
        """An image of the given kind, owned by OWNER, on both servers,
        created through Glance's API with the same id; returns the id as
        it is to be used in URLs."""
        image_id = image_id or str(uuid.uuid4())
        if kind == 'unknown':
            return image_id
        if kind == 'abc':
            return 'abc'
        vis = {'deactivated': 'private', 'deleted': 'private',
               'upper': 'private'}.get(kind, kind)
        self.same('POST', '/v2/images', ADMIN, body={
            'id': image_id, 'name': 'img-%s' % kind, 'owner': OWNER,
            'visibility': vis, 'tags': list(tags), 'disk_format': 'raw',
            'container_format': 'bare'}, status=201)
        path = '/v2/images/' + image_id
        if kind == 'shared':
            for project in (ACC, PEND):
                self.same('POST', path + '/members', OWNER_M,
                          body={'member': project}, status=200)
            self.same('PUT', path + '/members/' + ACC, CALLERS['shared_acc'],
                      body={'status': 'accepted'}, status=200)
        elif kind == 'deactivated':
            self.same('PUT', path + '/file', OWNER_M, body=b'image data',
                      headers={'Content-Type': 'application/octet-stream'},
                      status=204)
            self.same('POST', path + '/actions/deactivate', ADMIN,
                      status=204)
        elif kind == 'deleted':
            self.same('DELETE', path, ADMIN, status=204)
        elif kind == 'upper':
            return image_id.upper()
        return image_id

    def tags_of(self, srv, image_id):
        resp = self.call(srv, 'GET', '/v2/images/' + image_id)
        self.assertEqual(200, resp.status, resp)
        return resp.json()['tags']


class MatrixTest(GlanceTest):
    """Item 4: caller x image, compared request by request."""

    def check_caller(self, caller):
        who = CALLERS[caller]
        images = {kind: self.create(kind) for kind in KINDS}
        stock_log, tags_log = [], []
        for kind, image_id in images.items():
            base = '/v2/images/%s/tags/' % image_id
            steps = [
                ('PUT', 't1', JSON), ('PUT', 't1', JSON),
                ('DELETE', 't1', JSON), ('DELETE', 't1', JSON),
                ('DELETE', 'pre', JSON),
                ('PUT', 't2', {'Accept': '*/*'}),
                ('DELETE', 't2', {'Accept': 'text/plain'}),
                ('DELETE', 't2', {}),
            ]
            for n, (method, tag, accept) in enumerate(steps):
                for srv, log in ((self.stock, stock_log),
                                 (self.tags, tags_log)):
                    h = dict(who, **accept)
                    raw = srv.request(method, base + tag, h)
                    log.append((kind, n, method, tag, Resp(srv, raw).key()))
            if kind in LIVE:
                self.assertEqual(sorted(self.tags_of(self.stock, image_id)),
                                 sorted(self.tags_of(self.tags, image_id)),
                                 kind)
        self.assertEqual(stock_log, tags_log)
        put = {entry[0]: entry[4][0] for entry in stock_log if entry[1] == 0}
        self.assertEqual(EXPECTED_PUT[caller], put)


def _matrix_test(caller):
    def test(self):
        self.check_caller(caller)
    test.__name__ = 'test_matrix_%s' % caller
    test.__doc__ = 'Caller %s against every kind of image.' % caller
    return test


for _caller in CALLERS:
    setattr(MatrixTest, 'test_matrix_%s' % _caller, _matrix_test(_caller))
