"""The caller x image x route matrix as a test (issue 6 item 3).

Every route (PUT, DELETE, and the 405 methods) x every persona x every
image (private, public, shared, community; deactivated, deleted, unknown)
answers as glance-behaviour.md section 2 and rows 5-10 say, with the exact
body, and nothing changes (tags, ``updated_at``) unless the answer is 204.
Then hostile values (SQL, NUL, very long) in the tag and the image id, and a
policy file that uses the ``tag`` target key. Each runs on the memory
driver and SQLite, and on MariaDB and PostgreSQL where they are reachable.
"""
import json
import os
import urllib.parse

import fixtures
from oslo_context import context
import sqlalchemy as sa
import testtools
import webob

from imagetags.tests import fixtures as it_fixtures

OWNER, OTHER, MEMBER, PENDING = 'p-owner', 'p-other', 'p-member', 'p-pending'
IMAGES = {
    'private': ('a0000000-0000-4000-8000-000000000001', 'private', 'active'),
    'public': ('a0000000-0000-4000-8000-000000000002', 'public', 'active'),
    'shared': ('a0000000-0000-4000-8000-000000000003', 'shared', 'active'),
    'community': ('a0000000-0000-4000-8000-000000000004', 'community',
                  'active'),
    'deactivated': ('a0000000-0000-4000-8000-000000000005', 'private',
                    'deactivated'),
    'deactivated-public': ('a0000000-0000-4000-8000-000000000006', 'public',
                           'deactivated'),
}
DELETED = 'a0000000-0000-4000-8000-000000000007'
UNKNOWN = 'a0000000-0000-4000-8000-0000000000ff'
TARGETS = [*IMAGES, 'deleted', 'unknown']


def _id(target):
    return {'deleted': DELETED, 'unknown': UNKNOWN}.get(
        target, IMAGES.get(target, (None,))[0])


def confirmed(roles, project=None, **extra):
    headers = {'X-Identity-Status': 'Confirmed', 'X-Roles': roles}
    if project is not None:
        headers['X-Project-Id'] = project
    headers.update(extra)
    return headers


# persona -> (identity headers, allow_anonymous_access)
PERSONAS = {
    'admin': (confirmed('admin,member,reader', 'p-admin'), False),
    'owner_member': (confirmed('member,reader', OWNER), False),
    'owner_member_only': (confirmed('member', OWNER), False),
    'owner_upper_case': (confirmed('Member,Reader', OWNER), False),
    'owner_tenant_id': (confirmed('member,reader', **{
        'X-Tenant-Id': OWNER}), False),
    'owner_reader': (confirmed('reader', OWNER), False),
    'owner_no_roles': (confirmed('', OWNER), False),
    'other': (confirmed('member,reader', OTHER), False),
    'other_member_only': (confirmed('member', OTHER), False),
    'shared_accepted': (confirmed('member,reader', MEMBER), False),
    'shared_pending': (confirmed('member,reader', PENDING), False),
    'no_project': (confirmed('member,reader'), False),
    'system_admin': (confirmed('admin', **{
        'OpenStack-System-Scope': 'all'}), False),
    'anon': ({}, False),
    'anon_not_confirmed': ({'X-Identity-Status': 'Invalid',
                            'X-Roles': 'admin', 'X-Project-Id': OWNER},
                           False),
    'anon_allowed': ({}, True),
}

OK = 'ok'        # PUT 204; DELETE 204 if the tag is there, else 404 bare
IMG = '404img'
BARE = '404bare'
POL = '403pol'
RO = '403ro'
UNAUTH = '401'
_ALL_OK = dict.fromkeys(IMAGES, OK)
_GONE = {'deleted': IMG, 'unknown': IMG}
# glance-behaviour.md section 2 (and rows 5-10); the rows marked "rules"
# were not measured on Glance but follow from its rules: member without
# reader elsewhere fails get_image (bare 404) where it can see the image.
EXPECTED = {
    'admin': {**_ALL_OK, **_GONE},
    'owner_member': {**_ALL_OK, **_GONE},
    'owner_member_only': {**_ALL_OK, **_GONE},
    'owner_upper_case': {**_ALL_OK, **_GONE},
    'owner_tenant_id': {**_ALL_OK, **_GONE},
    'owner_reader': {**dict.fromkeys(IMAGES, POL), **_GONE},
    'owner_no_roles': {**dict.fromkeys(IMAGES, BARE), **_GONE},
    'other': {'private': IMG, 'public': POL, 'shared': IMG,
              'community': POL, 'deactivated': IMG,
              'deactivated-public': POL, **_GONE},
    'other_member_only': {'private': IMG, 'public': BARE, 'shared': IMG,
                          'community': BARE, 'deactivated': IMG,
                          'deactivated-public': BARE, **_GONE},   # rules
    'shared_accepted': {'private': IMG, 'public': POL, 'shared': POL,
                        'community': POL, 'deactivated': IMG,
                        'deactivated-public': POL, **_GONE},
    'shared_pending': {'private': IMG, 'public': POL, 'shared': POL,
                       'community': POL, 'deactivated': IMG,
                       'deactivated-public': POL, **_GONE},
    'no_project': {'private': IMG, 'public': POL, 'shared': IMG,
                   'community': POL, 'deactivated': IMG,
                   'deactivated-public': POL, **_GONE},
    'system_admin': {**dict.fromkeys(IMAGES, BARE), **_GONE},
    'anon': dict.fromkeys(TARGETS, UNAUTH),
    'anon_not_confirmed': dict.fromkeys(TARGETS, UNAUTH),
    'anon_allowed': dict.fromkeys(TARGETS, RO),
}
METHODS_405 = ('GET', 'POST', 'PATCH', 'HEAD')
NL = '<br /><br />\n\n\n'
BODIES = {
    IMG: lambda image_id: {'message': 'Image %s not found.%s' % (image_id,
                                                                 NL),
                           'code': '404 Not Found', 'title': 'Not Found'},
    BARE: lambda _: {'message': 'The resource could not be found.' + NL,
                     'code': '404 Not Found', 'title': 'Not Found'},
    POL: lambda _: {'message': 'You are not authorized to complete '
                    'modify_image action.' + NL, 'code': '403 Forbidden',
                    'title': 'Forbidden'},
    RO: lambda _: {'message': 'Access was denied to this resource.<br /><br '
                   '/>\nRead-only access\n\n', 'code': '403 Forbidden',
                   'title': 'Forbidden'},
    UNAUTH: lambda _: {
        'message': 'This server could not verify that you are authorized to '
        'access the document you requested. Either you supplied the wrong '
        'credentials (e.g., bad password), or your browser does not '
        'understand how to supply the credentials required.' + NL,
        'code': '401 Unauthorized', 'title': 'Unauthorized'},
}
STATUS = {IMG: 404, BARE: 404, POL: 403, RO: 403, UNAUTH: 401}


def _admin_ctx():
    return context.RequestContext(project_id=OWNER, is_admin=True,
                                  overwrite=False)


def _allow(image):
    pass


class Backend(testtools.TestCase):
    """The real paste pipeline on one backend, with the matrix's images."""

    backend = None

    def setUp(self):
        super().setUp()
        self.database = self.useFixture(it_fixtures.Database(self.backend))
        self.apps = {}
        self.driver = None
        self.engine = None
        if self.database.url:   # plain SQLAlchemy, for quick snapshots
            self.engine = sa.create_engine(self.database.url)
            self.addCleanup(self.engine.dispose)

    def app(self, allow_anonymous=False, options=None):
        key = (allow_anonymous, json.dumps(options, sort_keys=True))
        if key not in self.apps:
            fast = {'database': {'sqlite_synchronous': False}} if (
                self.backend == 'sqlite') else {}
            config = self.useFixture(it_fixtures.ConfigDir(it_fixtures.merge(
                self.database.options, fast,
                {'DEFAULT': {'allow_anonymous_access': allow_anonymous}},
                options or {})))
            app = config.loadapp('noauth')
            if self.backend == 'memory':
                # Each memory driver is its own store: use the first one.
                if self.driver is None:
                    self.driver = it_fixtures.tags_app(app).driver
                it_fixtures.tags_app(app).driver = self.driver
            elif self.driver is None:
                self.driver = it_fixtures.tags_app(app).driver
            self.apps[key] = app
        return self.apps[key]

    def create_images(self):
        self.app()
        for image_id, visibility, status in IMAGES.values():
            self.driver.create_image(
                image_id, OWNER, visibility, status,
                members=[(MEMBER, 'accepted'), (PENDING, 'pending')])
        self.driver.create_image(DELETED, OWNER, 'public')
        self.driver.add_tag(_admin_ctx(), DELETED, 'gone', -1, _allow)
        self.driver.delete_image(DELETED)

    def snapshot(self):
        """Every image's tags and updated_at."""
        if self.engine is None:
            images = {target: self.driver.show_image(_id(target))
                      for target in IMAGES}
            return {target: (image['tags'], image['updated_at'])
                    for target, image in images.items()}
        states = it_fixtures.image_states(
            self.engine, [_id(target) for target in IMAGES])
        return {target: states[_id(target)] for target in IMAGES}

    def request(self, method, image_id, tag, headers, app=None):
        path = '/v2/images/%s/tags/%s' % (
            urllib.parse.quote(image_id, safe=''),
            urllib.parse.quote(tag, safe=''))
        req = webob.Request.blank(path, method=method, headers=dict(
            headers, Accept='application/json'))
        return req.get_response(app or self.app())


class MatrixMixin:

    def check_persona(self, persona):
        """The persona's row of the matrix (the images exist)."""
        headers, anonymous = PERSONAS[persona]
        app = self.app(anonymous)
        for target in TARGETS:
            image_id = _id(target)
            expected = EXPECTED[persona][target]
            for method, present in (('PUT', False), ('PUT', True),
                                    ('DELETE', True), ('DELETE', False),
                                    *((m, False) for m in METHODS_405)):
                tag = '%s-%s-%s' % (persona, method, 'p' if present else 'a')
                if present and target in IMAGES:
                    self.driver.add_tag(_admin_ctx(), image_id, tag, -1,
                                        _allow)
                before = self.snapshot()
                resp = self.request(method, image_id, tag, headers, app)
                after = self.snapshot()
                where = '%s %s on %s (tag %s): %s %r' % (
                    persona, method, target,
                    'present' if present else 'absent', resp.status,
                    resp.body)
                if expected == UNAUTH:
                    want = UNAUTH
                elif method in METHODS_405:
                    want = 405
                elif expected != OK:
                    want = expected
                elif method == 'PUT' or present:
                    want = 204
                else:
                    want = BARE
                self.check_answer(want, resp, image_id, method, where)
                if resp.status_int == 204:
                    changed = {t for t in IMAGES if before[t] != after[t]}
                    self.assertEqual({target} if method == 'DELETE'
                                     or not present else set(), changed,
                                     where)
                    self.assertEqual(method == 'PUT',
                                     tag in after[target][0], where)
                else:
                    self.assertEqual(before, after, where)

    def check_answer(self, want, resp, image_id, method, where):
        # Every answer behind the request_id middleware carries an id,
        # 401 included (Glance, which has no such middleware, sends none
        # with its 401).
        rid = resp.headers.get('X-Openstack-Request-Id')
        self.assertTrue(rid and rid.startswith('req-'), where)
        if want == 204:
            self.assertEqual(204, resp.status_int, where)
            self.assertEqual(b'', resp.body, where)
            self.assertEqual('text/html; charset=UTF-8',
                             resp.headers['Content-Type'], where)
            return
        if want == 405:
            self.assertEqual(405, resp.status_int, where)
            self.assertEqual('PUT, DELETE', resp.headers['Allow'], where)
            if method == 'HEAD':
                self.assertEqual(b'', resp.body, where)
            else:
                self.assertEqual({
                    'message': 'The method %s is not allowed for this '
                    'resource. <br /><br />\n' % method,
                    'code': '405 Method Not Allowed',
                    'title': 'Method Not Allowed'}, resp.json, where)
            return
        self.assertEqual(STATUS[want], resp.status_int, where)
        if method == 'HEAD':
            self.assertEqual(b'', resp.body, where)
            return
        self.assertEqual('application/json', resp.content_type, where)
        self.assertEqual(BODIES[want](image_id), resp.json, where)

    # -- hostile values ------------------------------------------------------
    def test_hostile_tags(self):
        self.create_images()
        image_id = _id('private')
        owner = PERSONAS['owner_member'][0]
        forms = ["'; DROP TABLE image_tags; --", "1' OR '1'='1",
                 'x" OR "1"="1', '); DELETE FROM images; --', '%', '%%',
                 '%(tag)s', '\\', '\\x00', 'a\x00b', '\x00', 'a\nb', '\t',
                 'x' * 255, '\u00e9' * 255, '\u30bf' * 255, '\uffff',
                 'NULL', 'null', '*', '_', 'a%b', "O'Reilly", '--']
        for tag in forms:
            before = self.snapshot()
            put = self.request('PUT', image_id, tag, owner)
            after = self.snapshot()
            if put.status_int == 204:
                self.assertEqual(before['private'][0] + [tag],
                                 after['private'][0], tag)
            else:
                # Only PostgreSQL refuses NUL, deliberately (contract).
                self.assertEqual(400, put.status_int, (tag, put.body))
                self.assertIn('\x00', tag)
                self.assertEqual('postgresql', self.backend)
                self.assertEqual(before, after, tag)
                continue
            self.assertEqual({t: v for t, v in before.items()
                              if t != 'private'},
                             {t: v for t, v in after.items()
                              if t != 'private'}, tag)
            self.assertEqual(204, self.request('PUT', image_id, tag,
                                               owner).status_int, tag)
            self.assertEqual(204, self.request('DELETE', image_id, tag,
                                               owner).status_int, tag)
            self.assertEqual(404, self.request('DELETE', image_id, tag,
                                               owner).status_int, tag)
            final = self.snapshot()
            self.assertEqual(before['private'][0], final['private'][0], tag)
            for target in IMAGES:
                if target != 'private':
                    self.assertEqual(before[target], final[target], tag)
        too_long = ['x' * 256, '\u00e9' * 256, '\u30bf' * 256,
                    'y' * 10000, '\U0001f600', 'a\U0001f600b']
        for tag in too_long:
            before = self.snapshot()
            put = self.request('PUT', image_id, tag, owner)
            self.assertEqual(400, put.status_int, tag[:20])
            delete = self.request('DELETE', image_id, tag, owner)
            self.assertIn(delete.status_int, (400, 404), tag[:20])
            self.assertEqual(before, self.snapshot(), tag[:20])

    def test_hostile_image_ids(self):
        self.create_images()
        owner = PERSONAS['owner_member'][0]
        admin = PERSONAS['admin'][0]
        ids = ["' OR '1'='1", "x'; DROP TABLE images; --", 'a\x00b',
               '%', '*', _id('private') + "' --",
               _id('private').upper(), _id('private').replace('-', ''),
               ' ' + _id('private'), _id('private') + ' ', 'i' * 300,
               'i' * 10000, '\u00e9', '..']
        for image_id in ids:
            for headers in (owner, admin):
                before = self.snapshot()
                for method in ('PUT', 'DELETE'):
                    resp = self.request(method, image_id, 'x', headers)
                    self.assertEqual(404, resp.status_int, image_id[:40])
                    self.assertEqual(BODIES[IMG](image_id), resp.json)
                self.assertEqual(before, self.snapshot())

    def test_policy_file_with_the_tag_key(self):
        policy = os.path.join(self.useFixture(fixtures.TempDir()).path,
                              'policy.yaml')
        with open(policy, 'w') as f:
            f.write('delete_image_tag: "rule:context_is_admin or (rule:'
                    'modify_image and not \'reserved\':%(tag)s)"\n'
                    'add_image_tag: "rule:modify_image and not '
                    '\'reserved\':%(tag)s"\n')
        app = self.app(options={'oslo_policy': {'policy_file': policy}})
        self.create_images()
        image_id = _id('private')
        owner = PERSONAS['owner_member'][0]
        admin = PERSONAS['admin'][0]
        reader = PERSONAS['owner_reader'][0]
        other = PERSONAS['other'][0]
        for tag in ('x', 'reserved', 'Reserved', 'reserved ', '%(tag)s'):
            self.driver.add_tag(_admin_ctx(), image_id, tag, -1, _allow)
        self.assertEqual(204, self.request('DELETE', image_id, 'x', owner,
                                           app).status_int)
        before = self.snapshot()
        resp = self.request('DELETE', image_id, 'reserved', owner, app)
        self.assertEqual(403, resp.status_int)
        self.assertEqual(BODIES[POL](image_id), resp.json)
        self.assertEqual(before, self.snapshot())
        # Exact, case-sensitive comparison: these are other tags.
        for tag in ('Reserved', 'reserved '):
            self.assertEqual(204, self.request('DELETE', image_id, tag,
                                               owner, app).status_int, tag)
        # Still 404 or 403 by the usual rules for others.
        self.assertEqual(403, self.request('DELETE', image_id, 'reserved',
                                           reader, app).status_int)
        self.assertEqual(404, self.request('DELETE', image_id, 'reserved',
                                           other, app).status_int)
        self.assertEqual(204, self.request('DELETE', image_id, 'reserved',
                                           admin, app).status_int)
        # The tag is a value in the target, never a format string.
        self.assertEqual(204, self.request('DELETE', image_id, '%(tag)s',
                                           owner, app).status_int)
        self.assertEqual(204, self.request('PUT', image_id, 'y', owner,
                                           app).status_int)
        self.assertEqual(403, self.request('PUT', image_id, 'reserved',
                                           owner, app).status_int)
        self.assertEqual(204, self.request('PUT', image_id, '%(tag)s',
                                           owner, app).status_int)
        self.assertEqual(['y', '%(tag)s'],
                         self.driver.show_image(image_id)['tags'])


def _persona_test(persona):
    def test(self):
        self.create_images()
        self.check_persona(persona)
    test.__name__ = 'test_matrix_%s' % persona
    return test


class MemoryMatrixTest(MatrixMixin, Backend):
    backend = 'memory'


class SQLiteMatrixTest(MatrixMixin, Backend):
    backend = 'sqlite'


for _persona in PERSONAS:
    for _cls in (MemoryMatrixTest, SQLiteMatrixTest):
        setattr(_cls, 'test_matrix_%s' % _persona, _persona_test(_persona))


class ServerMatrix(MatrixMixin):
    """On a database server, the whole matrix in one test: one database."""

    def test_matrix(self):
        self.create_images()
        for persona in PERSONAS:
            self.check_persona(persona)


class MariaDBMatrixTest(ServerMatrix, Backend):
    backend = 'mysql'


class PostgreSQLMatrixTest(ServerMatrix, Backend):
    backend = 'postgresql'
