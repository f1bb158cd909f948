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
   statuses, headers and bodies;
5. with notifications on (RabbitMQ), a tag change sends the image.update
   that Glance's own sends.

The tests skip (with the reason) when Glance is not installed, so that the
plain unit test run passes; ``tox -e glance`` installs it.
"""
from concurrent import futures
import json
import time
import urllib.parse
import uuid

import fixtures
import testtools

from imagetags.tests import fixtures as it_fixtures
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
    'anon': dict.fromkeys(KINDS, 401),
    'unconfirmed': dict.fromkeys(KINDS, 401),
}
for _expected in EXPECTED_PUT.values():
    for _kind in KINDS:
        _expected.setdefault(_kind, 404)

JSON = {'Accept': 'application/json'}
PATCH_TYPE = 'application/openstack-images-v2.1-json-patch'
_TIMES = ('created_at', 'updated_at')


def _normal(doc):
    """JSON with timestamps masked and tag lists sorted."""
    if isinstance(doc, list):
        return [_normal(v) for v in doc]
    if not isinstance(doc, dict):
        return doc
    out = {}
    for k, v in doc.items():
        if k in _TIMES and isinstance(v, str):
            v = 'T'
        elif k == 'tags' and isinstance(v, list):
            v = sorted(v)
        out[k] = _normal(v)
    return out


class GlancePair(fixtures.Fixture):
    """A stock Glance and a Glance with the imagetags filter, on copies of
    one freshly synced database of the given backend."""

    def __init__(self, backend, anonymous=False, notify=None):
        super().__init__()
        self.backend = backend
        self.anonymous = anonymous
        self.notify = notify    # (stock's, tags') glance-api.conf extra

    def _setUp(self):
        db = self.useFixture(server.GlanceDatabase(self.backend))
        stock, tags = self.notify or ('', '')
        self.stock = self.useFixture(server.GlanceServer(
            db.new(), server.STOCK, QUOTA, self.anonymous, wait=False,
            extra_conf=stock))
        self.tags = self.useFixture(server.GlanceServer(
            db.new(), server.IMAGETAGS, QUOTA, self.anonymous, wait=False,
            extra_conf=tags))
        # Both start at once, and both are asked to stop before either is
        # waited for.
        self.addCleanup(self.tags.stop_soon)
        self.addCleanup(self.stock.stop_soon)
        self.stock.wait_ready()
        self.tags.wait_ready()


class Resp:
    """A response, normalised so that two servers' answers compare equal:
    request ids, timestamps and the server's own address are masked."""

    def __init__(self, srv, raw):
        self.status, self.headers, self.raw = raw
        self.body = self.raw.replace(srv.url.encode(), b'BASE')
        if self.headers.get('content-type', '').startswith(
                'application/json') and self.body[:1] in (b'{', b'['):
            # Glance's image JSON lists tags in no set order.
            self.body = json.dumps(_normal(json.loads(self.body))).encode()
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
    """Base: one pair of servers per class (started in setUpClass)."""

    BACKEND = 'sqlite'
    ANONYMOUS = False
    NOTIFY = None       # GlancePair's notify
    pair = None
    skip_reason = None

    @classmethod
    def missing(cls):
        return server.glance_missing() or server.backend_missing(
            cls.BACKEND)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.skip_reason = cls.missing()
        if cls.skip_reason is None:
            pair = GlancePair(cls.BACKEND, cls.ANONYMOUS, cls.NOTIFY)
            pair.setUp()
            cls.pair = pair
            cls.pool = futures.ThreadPoolExecutor(1)

    @classmethod
    def tearDownClass(cls):
        if cls.pair is not None:
            cls.pool.shutdown()
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
        """One request; a header given as None is not sent."""
        h = dict(JSON, **who)
        h.update(headers or {})
        h = {k: v for k, v in h.items() if v is not None}
        return Resp(srv, srv.request(method, path, h, body))

    def both(self, method, path, who=ADMIN, body=None, headers=None):
        """The same request to both servers at once: (stock, tags)."""
        tags = self.pool.submit(self.call, self.tags, method, path, who,
                                body, headers)
        stock = self.call(self.stock, method, path, who, body, headers)
        return stock, tags.result()

    def same(self, method, path, who=ADMIN, body=None, headers=None,
             status=None):
        """Both servers answer alike (and with ``status`` if given)."""
        stock, tags = self.both(method, path, who, body, headers)
        self.assertEqual(stock.key(), tags.key(),
                         '%s %s answered differently' % (method, path))
        if status is not None:
            self.assertEqual(status, stock.status, '%s %s' % (method, path))
        return stock, tags

    def create(self, kind='private', tags=('pre',), image_id=None,
               **properties):
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
            'container_format': 'bare', **properties}, status=201)
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
                ('DELETE', 't2', {'Accept': None}),
            ]
            for n, (method, tag, accept) in enumerate(steps):
                stock, tags = self.both(method, base + tag, who,
                                        headers=accept)
                stock_log.append((kind, n, method, tag, stock.key()))
                tags_log.append((kind, n, method, tag, tags.key()))
            if kind in LIVE:
                self.assertEqual(sorted(self.tags_of(self.stock, image_id)),
                                 sorted(self.tags_of(self.tags, image_id)),
                                 kind)
        expected = dict(EXPECTED_PUT[caller])
        if self.BACKEND == 'mysql':
            stock_log, tags_log = self.exact_ids(images['upper'], stock_log,
                                                 tags_log)
            del expected['upper']
        self.assertEqual(stock_log, tags_log)
        put = {entry[0]: entry[4][0] for entry in stock_log if entry[1] == 0}
        self.assertEqual(expected, put)

    def exact_ids(self, upper, stock_log, tags_log):
        """Glance on MariaDB finds an image by its id in any case (its
        collation folds case); imagetags' ids are exact, as Glance's are on
        the other databases (glance-behaviour.md section 2, row 6): where
        the answers differ, imagetags' is 404. The logs without them."""
        for entry in tags_log:
            if entry[0] == 'upper' and entry not in stock_log:
                self.assertEqual(404, entry[4][0], entry)
                self.assertIn(('Image %s not found.' % upper).encode(),
                              entry[4][-1], entry)
        return ([e for e in stock_log if e[0] != 'upper'],
                [e for e in tags_log if e[0] != 'upper'])


def _matrix_test(caller):
    def test(self):
        self.check_caller(caller)
    test.__name__ = 'test_matrix_%s' % caller
    test.__doc__ = 'Caller %s against every kind of image.' % caller
    return test


for _caller in CALLERS:
    setattr(MatrixTest, 'test_matrix_%s' % _caller, _matrix_test(_caller))


def _quote(tag):
    return urllib.parse.quote(tag, safe='')


class FilterTest(GlanceTest):
    """Items 1-3: who answers the tag calls, what Glance then shows, and
    that everything else is Glance's own answer."""

    def path(self, image_id, tag=None):
        path = '/v2/images/' + image_id
        return path if tag is None else path + '/tags/' + tag

    # -- 1. tag PUT/DELETE are answered by imagetags ------------------------
    def test_non_ascii_tag_is_stored_as_utf8(self):
        image_id = self.create(tags=())
        self.same('PUT', self.path(image_id, '%C3%A9'), OWNER_M, status=204)
        self.assertEqual(['\u00c3\u00a9'], self.tags_of(self.stock, image_id))
        self.assertEqual(['\u00e9'], self.tags_of(self.tags, image_id))
        self.same('DELETE', self.path(image_id, '%C3%A9'), OWNER_M,
                  status=204)
        for srv in self.servers:
            self.assertEqual([], self.tags_of(srv, image_id))

    def test_tags_from_json_can_be_deleted_through_the_url(self):
        image_id = self.create(tags=('\u00e9', '\u30bf\u30b0'))
        stock, tags = self.both('DELETE', self.path(image_id, '%C3%A9'),
                                OWNER_M)
        self.assertEqual((404, 204), (stock.status, tags.status))
        self.assertEqual(['\u30bf\u30b0'], self.tags_of(self.tags, image_id))
        self.assertEqual(2, len(self.tags_of(self.stock, image_id)))

    def test_method_override_is_not_honoured(self):
        image_id = self.create(tags=('x',))
        stock, tags = self.both('GET', self.path(image_id, 'x') +
                                '?_method=DELETE', OWNER_M)
        self.assertEqual(204, stock.status)
        self.assertEqual([], self.tags_of(self.stock, image_id))
        self.assertEqual(405, tags.status)
        self.assertEqual('PUT, DELETE', tags.headers['allow'])
        self.assertEqual(['x'], self.tags_of(self.tags, image_id))
        stock, tags = self.both('POST', self.path(image_id, 'y') +
                                '?_method=PUT', OWNER_M)
        self.assertEqual((204, 405), (stock.status, tags.status))
        self.assertEqual(['x'], self.tags_of(self.tags, image_id))

    def test_four_byte_characters_are_refused(self):
        image_id = self.create(tags=())
        stock, tags = self.both('PUT', self.path(image_id, '%F0%9F%98%80'),
                                OWNER_M)
        self.assertEqual(204, stock.status)
        self.assertEqual(400, tags.status)
        self.assertIn("Param values can't contain 4 byte unicode.",
                      tags.json()['message'])
        self.assertEqual([], self.tags_of(self.tags, image_id))

    def test_tag_with_slash_can_be_deleted(self):
        image_id = self.create(tags=())
        self.same('PATCH', self.path(image_id), OWNER_M, body=[
            {'op': 'replace', 'path': '/tags', 'value': ['a/b']}],
            headers={'Content-Type': PATCH_TYPE}, status=200)
        stock, tags = self.both('DELETE', self.path(image_id, 'a%2Fb'),
                                OWNER_M)
        self.assertEqual((404, 204), (stock.status, tags.status))
        self.assertEqual(['a/b'], self.tags_of(self.stock, image_id))
        self.assertEqual([], self.tags_of(self.tags, image_id))

    def test_no_op_put_writes_nothing(self):
        image_id = self.create(tags=('x',))
        before = [self.call(s, 'GET', self.path(image_id)).json()
                  ['updated_at'] for s in self.servers]
        time.sleep(1.1)   # Glance shows updated_at to the second
        self.same('PUT', self.path(image_id, 'x'), OWNER_M, status=204)
        after = [self.call(s, 'GET', self.path(image_id)).json()
                 ['updated_at'] for s in self.servers]
        self.assertNotEqual(before[0], after[0])   # Glance bumps it
        self.assertEqual(before[1], after[1])      # imagetags does not
        self.same('PUT', self.path(image_id, 'y'), OWNER_M, status=204)
        self.assertGreater(self.call(self.tags, 'GET', self.path(image_id))
                           .json()['updated_at'], before[1])

    def test_long_request_id(self):
        image_id = self.create(tags=())
        long_id = 'r' * 65
        stock, tags = self.both('PUT', self.path(image_id, 'x'), OWNER_M,
                                headers={'X-Openstack-Request-Id': long_id})
        self.assertEqual(500, stock.status)
        self.assertEqual(204, tags.status)
        self.assertNotIn(long_id, tags.headers['x-openstack-request-id'])
        self.assertEqual(['x'], self.tags_of(self.tags, image_id))

    def test_request_id_is_echoed_as_glance_does(self):
        image_id = self.create(tags=())
        for n, rid in enumerate(('abc', 'r' * 64, 'req-' + str(uuid.uuid4()))):
            stock, tags = self.both(
                'PUT', self.path(image_id, 't%d' % n), OWNER_M,
                headers={'X-Openstack-Request-Id': rid})
            self.assertEqual((204, 204), (stock.status, tags.status))
            self.assertEqual(stock.headers['x-openstack-request-id'],
                             tags.headers['x-openstack-request-id'])

    def test_invalid_utf8_is_answered_before_the_filter(self):
        # Glance's versionnegotiation filter, which runs before imagetags
        # in Glance's pipeline, fails on req.path first: 500 in both.
        image_id = self.create(tags=())
        stock, tags = self.both('PUT', self.path(image_id, 'a%FFb'), OWNER_M)
        self.assertEqual((500, 500), (stock.status, tags.status))
        self.assertNotIn('x-openstack-request-id', tags.headers)

    def test_quota_is_glances(self):
        image_id = self.create(tags=('a', 'b', 'c', 'd'))
        self.same('PUT', self.path(image_id, 'e'), OWNER_M, status=204)
        self.same('PUT', self.path(image_id, 'e'), OWNER_M, status=204)
        stock, tags = self.same('PUT', self.path(image_id, 'f'), OWNER_M,
                                status=413)
        self.assertIn(b'Attempted: 6, Maximum: 5:', tags.raw)
        self.same('DELETE', self.path(image_id, 'a'), OWNER_M, status=204)
        self.same('PUT', self.path(image_id, 'f'), OWNER_M, status=204)

    def test_length_is_counted_in_characters(self):
        image_id = self.create(tags=())
        stock, tags = self.both('PUT', self.path(image_id, '%C3%A9' * 200),
                                OWNER_M)
        self.assertEqual((400, 204), (stock.status, tags.status))
        self.assertEqual(['\u00e9' * 200], self.tags_of(self.tags, image_id))
        # 400 from both; the messages differ (Glance echoes mojibake).
        stock, tags = self.both('PUT', self.path(image_id, '%C3%A9' * 256),
                                OWNER_M)
        self.assertEqual((400, 400), (stock.status, tags.status))
        self.assertIn('\u00e9' * 256, tags.json()['message'])

    def test_tag_with_leading_slash(self):
        # Contract 3.5: %2F in the tag segment addresses a tag containing
        # "/" under gunicorn, decoded from the raw URI: inside Glance,
        # versionnegotiation (before the filter) collapses "//" in
        # PATH_INFO, so "/tags/%2Fa" arrives there as "/tags/a".
        image_id = self.create(tags=('a',))
        self.same('PATCH', self.path(image_id), OWNER_M, body=[
            {'op': 'replace', 'path': '/tags', 'value': ['a', '/a', '/']}],
            headers={'Content-Type': PATCH_TYPE}, status=200)
        results = [self.call(self.tags, 'DELETE', self.path(image_id, tag),
                             OWNER_M).status for tag in ('%2Fa', '%2F')]
        self.assertEqual(([204, 204], ['a']),
                         (results, sorted(self.tags_of(self.tags, image_id))))

    def test_image_without_owner_and_caller_without_project(self):
        # Glance's DB layer (is_image_mutable) refuses every change to an
        # image with no owner, or by a context with no project, unless
        # admin: 403 "Not allowed to update/delete tags for image <id>."
        # (The default modify_image rule passes there: None == None.)
        # imagetags refuses at the policy step, before looking for the tag,
        # so the DELETE of an absent tag is 403 too where Glance says 404.
        who = CALLERS['member_no_project']
        image_id = str(uuid.uuid4())
        self.same('POST', '/v2/images', who, status=201,
                  body={'id': image_id, 'tags': ['pre', 'pre2']})
        stock, tags = [], []
        for method, tag in (('PUT', 'x'), ('PUT', 'pre'), ('DELETE', 'pre2'),
                            ('DELETE', 'absent')):
            pair = self.both(method, self.path(image_id, tag), who)
            stock.append(pair[0].key())
            tags.append(pair[1].key())
        self.assertEqual([403, 403, 403, 404], [k[0] for k in stock])
        self.assertEqual(stock[:3], tags[:3])
        self.assertEqual(403, tags[3][0])
        self.assertEqual(['pre', 'pre2'], sorted(self.tags_of(self.tags,
                                                              image_id)))

    def test_nul_on_postgresql(self):
        if self.BACKEND != 'postgresql':
            self.skipTest('PostgreSQL only')
        image_id = self.create(tags=())
        stock, tags = self.both('PUT', self.path(image_id, 'a%00b'), OWNER_M)
        self.assertEqual((500, 400), (stock.status, tags.status))

    # -- 2. Glance shows every change at once -------------------------------
    def test_glance_sees_every_change(self):
        marker = uuid.uuid4().hex[:8]
        image_id = self.create(tags=())
        path = self.path(image_id)

        def check(expected):
            for srv in self.servers:
                self.assertEqual(expected, sorted(self.tags_of(srv, image_id)))
                for tag in ('a', 'b', 'c', 'd'):
                    found = self.call(srv, 'GET', '/v2/images?tag=%s-%s'
                                      % (tag, marker)).json()['images']
                    self.assertEqual(
                        tag in [t.split('-')[0] for t in expected],
                        [image_id] == [i['id'] for i in found], (srv, tag))
            self.same('GET', path, ADMIN, status=200)

        def tag(name):
            return '%s-%s' % (name, marker)

        self.same('PUT', self.path(image_id, tag('a')), OWNER_M, status=204)
        check([tag('a')])
        self.same('PATCH', path, OWNER_M, body=[
            {'op': 'replace', 'path': '/tags',
             'value': [tag('a'), tag('b'), tag('c')]}],
            headers={'Content-Type': PATCH_TYPE}, status=200)
        check([tag('a'), tag('b'), tag('c')])
        self.same('DELETE', self.path(image_id, tag('b')), OWNER_M,
                  status=204)
        check([tag('a'), tag('c')])
        self.same('PUT', self.path(image_id, tag('d')), OWNER_M, status=204)
        check([tag('a'), tag('c'), tag('d')])
        self.same('DELETE', self.path(image_id, tag('a')), OWNER_M,
                  status=204)
        check([tag('c'), tag('d')])
        self.same('DELETE', path, OWNER_M, status=204)
        self.same('PUT', self.path(image_id, tag('a')), OWNER_M, status=404)
        self.same('DELETE', self.path(image_id, tag('c')), OWNER_M,
                  status=404)

    # -- 3. everything else is Glance's --------------------------------------
    def test_other_calls_are_glances(self):
        name = 'img-%s' % uuid.uuid4().hex[:8]
        for path, status in (('/', 300), ('/versions', 200),
                             ('/v2/schemas/image', 200),
                             ('/v2/schemas/images', 200),
                             ('/v2/schemas/member', 200),
                             ('/v2/schemas/members', 200),
                             ('/v2/info/import', 200),
                             ('/v2/info/stores', 200),
                             ('/v2/metadefs/namespaces', 200),
                             ('/healthcheck', 200)):
            self.same('GET', path, ADMIN, status=status)
        self.same('GET', '/v2/images', {}, status=401)
        image_id = self.create(tags=('pre', name))
        path = self.path(image_id)
        self.same('GET', path, OWNER_M, status=200)
        self.same('GET', '/v2/images?tag=%s' % name, OWNER_M, status=200)
        self.same('GET', '/v2/images?name=%s' % name, OWNER_M, status=200)
        self.same('PATCH', path, OWNER_M, body=[
            {'op': 'replace', 'path': '/name', 'value': name + '-2'},
            {'op': 'replace', 'path': '/tags',
             'value': ['pre', name, 'patched']}],
            headers={'Content-Type': PATCH_TYPE}, status=200)
        self.same('PATCH', path, OWNER_M, body={'bad': 1},
                  headers={'Content-Type': PATCH_TYPE}, status=400)
        self.same('PUT', path + '/file', OWNER_M, body=b'0123456789',
                  headers={'Content-Type': 'application/octet-stream'},
                  status=204)
        self.same('GET', path + '/file', OWNER_M, status=200)
        self.same('GET', path, OWNER_M, status=200)
        self.same('POST', path + '/members', OWNER_M,
                  body={'member': OTHER}, status=403)   # not shared
        self.same('PATCH', path, OWNER_M, body=[
            {'op': 'replace', 'path': '/visibility', 'value': 'shared'}],
            headers={'Content-Type': PATCH_TYPE}, status=200)
        self.same('POST', path + '/members', OWNER_M,
                  body={'member': OTHER}, status=200)
        self.same('GET', path + '/members', OWNER_M, status=200)
        self.same('PUT', path + '/members/' + OTHER, CALLERS['other'],
                  body={'status': 'accepted'}, status=200)
        self.same('GET', '/v2/images?member_status=accepted&name=%s-2'
                  % name, CALLERS['other'], status=200)
        self.same('POST', path + '/actions/deactivate', ADMIN, status=204)
        self.same('POST', path + '/actions/reactivate', ADMIN, status=204)
        self.same('DELETE', path, CALLERS['owner_reader'], status=403)
        # Glance's router honours _method on its own paths: passed through.
        self.same('GET', path + '?_method=DELETE', OWNER_M, status=204)
        self.same('GET', path, OWNER_M, status=404)
        self.same('DELETE', path, OWNER_M, status=404)
        self.same('GET', '/v2/images?tag=%s' % name, OWNER_M, status=200)

    def test_tag_path_answers_as_glance(self):
        image_id = self.create(tags=())
        tag = self.path(image_id, 'tag1')
        for method in ('GET', 'POST', 'PATCH', 'HEAD'):
            for accept in ('application/json', '*/*', 'text/plain'):
                self.same(method, tag, OWNER_M, status=405,
                          headers={'Accept': accept})
        self.same('OPTIONS', tag, OWNER_M, status=200)
        self.same('PUT', tag, {}, status=401)
        self.same('PUT', tag, OWNER_M, body={'a': 1}, status=400)
        self.same('PUT', tag, OWNER_M, body=b'', status=204,
                  headers={'Content-Type': 'application/json'})
        self.same('DELETE', tag, OWNER_M, body=b'x', status=400)
        self.same('PUT', self.path(image_id, 'a' * 256), OWNER_M, status=400)
        self.same('PUT', self.path(image_id, 'b' * 256), OWNER_M, status=400,
                  headers={'Accept': '*/*'})
        self.same('DELETE', self.path(image_id, 'a' * 256), OWNER_M,
                  status=404)
        self.same('PUT', self.path(image_id, 'a' * 255), OWNER_M, status=204)
        self.same('PUT', '/v2.1/images/%s/tags/v21' % image_id, OWNER_M,
                  status=204)
        self.same('PUT', '/v1/images/%s/tags/v1' % image_id, OWNER_M,
                  status=300)
        self.same('PUT', tag + '?foo=bar', OWNER_M, status=204)
        for path in ('/tags', '/tags/', '/tags/tag1/', '/tags/a/b'):
            for method in ('GET', 'PUT', 'DELETE'):
                self.same(method, self.path(image_id) + path, OWNER_M,
                          status=404)
        for srv in self.servers:
            self.assertEqual(sorted(['a' * 255, 'v21', 'tag1']),
                             sorted(self.tags_of(srv, image_id)))

    def test_case_and_trailing_spaces_count_on_mariadb(self):
        # Glance's utf8_general_ci column matches Tag1 for tag1 and for
        # 'tag1 ' (LP #1534052); imagetags compares tags as bytes.
        if self.BACKEND != 'mysql':
            self.skipTest('MariaDB/MySQL only')
        image_id = self.create(tags=())
        for form in ('tag1', 'Tag1', 'tag1%20'):
            self.same('PUT', self.path(image_id, form), OWNER_M, status=204)
        stock, tags = self.both('DELETE', self.path(image_id, 'Tag1'),
                                OWNER_M)
        self.assertEqual((500, 204), (stock.status, tags.status))
        self.assertEqual(['tag1', 'tag1 '],
                         sorted(self.tags_of(self.tags, image_id)))

    def test_tag_forms_round_trip_as_glance(self):
        image_id = self.create(tags=())
        forms = ['tag1', 'TAG1', 'my%20tag', '%20tag%20', '%20', 'a+b',
                 'a,b', 'a%2Cb', 'a;b', 'a%3Bb', 'a%25b', 'a%3Fb', 'a%23b',
                 'k:v=1', 'a%0Ab', 'a%09b']
        if self.BACKEND != 'postgresql':
            forms.append('a%00b')   # PostgreSQL: Glance 500, imagetags 400
        for form in forms:
            self.same('PUT', self.path(image_id, form), OWNER_M, status=204)
            self.same('PUT', self.path(image_id, form), OWNER_M, status=204)
            self.assertEqual(sorted(self.tags_of(self.stock, image_id)),
                             sorted(self.tags_of(self.tags, image_id)), form)
            self.same('DELETE', self.path(image_id, form), OWNER_M,
                      status=204)
            self.same('DELETE', self.path(image_id, form), OWNER_M,
                      status=404)
        self.same('PUT', self.path(image_id, 'tag1'), OWNER_M, status=204)
        self.same('DELETE', self.path(image_id, 'Tag1'), OWNER_M, status=404)
        self.same('PUT', self.path(image_id, 'Tag1'), OWNER_M, status=204)
        for srv in self.servers:
            self.assertEqual(['Tag1', 'tag1'],
                             sorted(self.tags_of(srv, image_id)))


class AnonymousTest(GlanceTest):
    """``allow_anonymous_access = true`` in glance-api.conf: imagetags
    reads it from there and answers anonymous tag calls as Glance does."""

    ANONYMOUS = True

    def test_anonymous_read_only(self):
        images = [self.create(kind) for kind in ('private', 'public',
                                                 'unknown')]
        for image_id in images:
            for method in ('PUT', 'DELETE', 'GET'):
                for accept in ('application/json', '*/*', 'text/plain'):
                    path = '/v2/images/%s/tags/pre' % image_id
                    stock, tags = self.same(method, path, {},
                                            headers={'Accept': accept})
                    self.assertEqual(
                        403 if method != 'GET' else 405, stock.status)
        self.same('GET', '/v2/images/' + images[1], {})
        for image_id in images[:2]:
            for srv in self.servers:
                self.assertEqual(['pre'], self.tags_of(srv, image_id))


TOPICS = ['imagetags_glance_%s_%s' % (name, uuid.uuid4().hex[:8])
          for name in ('stock', 'tags')]


class NotificationTest(GlanceTest):
    """Both Glances send notifications (RabbitMQ, a topic each): a tag
    change made by imagetags sends the image.update that Glance's own
    sends, with the same payload."""

    NOTIFY = tuple(
        '\n[oslo_messaging_notifications]\ndriver = messagingv2\n'
        'topics = %s\ntransport_url = %s\n' % (topic, it_fixtures.RABBIT_URL)
        for topic in TOPICS)

    @classmethod
    def missing(cls):
        return it_fixtures.rabbit_missing() or super().missing()

    def updates(self, topic, expected):
        """The image.update payloads sent on topic since the last look."""
        return [m['payload'] for m in it_fixtures.notifications(
            topic + '.info', expected) if m['event_type'] == 'image.update']

    @classmethod
    def tearDownClass(cls):
        for topic in TOPICS:
            it_fixtures.drop_queue(topic + '.info')
        super().tearDownClass()

    def test_image_update_as_glances(self):
        # Its extra properties too (Glance's image_properties).
        image_id = self.create(tags=('pre',), os_distro='debian',
                               hw_cpu_cores='2')
        path = '/v2/images/%s/tags/' % image_id
        for topic in TOPICS:
            self.updates(topic, 0)      # what the creation sent
        for method, tag in (('PUT', 'new'), ('DELETE', 'pre')):
            self.same(method, path + tag, OWNER_M, status=204)
            stock, tags = (self.updates(topic, 1) for topic in TOPICS)
            self.assertEqual(1, len(stock), stock)
            self.assertEqual(
                [_masked(p) for p in stock], [_masked(p) for p in tags])
        self.assertEqual((['new'], {'os_distro': 'debian',
                                    'hw_cpu_cores': '2'}),
                         (tags[0]['tags'], tags[0]['properties']))
        # A no-op PUT: Glance sends one, imagetags (which writes nothing)
        # none.
        self.same('PUT', path + 'new', OWNER_M, status=204)
        self.assertEqual((1, 0), (len(self.updates(TOPICS[0], 1)),
                                  len(self.updates(TOPICS[1], 0))))


def _masked(payload):
    """A payload with its tags sorted and its timestamps checked for their
    form (oslo.utils' isotime), then masked."""
    for key in ('created_at', 'updated_at'):
        time.strptime(payload[key], '%Y-%m-%dT%H:%M:%SZ')
    return dict(payload, tags=sorted(payload['tags']), created_at='T',
                updated_at='T')


class PostgreSQLMatrixTest(MatrixTest):
    BACKEND = 'postgresql'


class PostgreSQLFilterTest(FilterTest):
    BACKEND = 'postgresql'


class MariaDBMatrixTest(MatrixTest):
    BACKEND = 'mysql'


class MariaDBFilterTest(FilterTest):
    BACKEND = 'mysql'
