"""The production pipeline (``main`` in etc/imagetags/api-paste.ini) with
keystonemiddleware's ``auth_token``, whose token validation is replaced by
keystonemiddleware's own ``AuthTokenFixture``; in-process through paste and
``webob.Request.blank``, on the SQL driver (SQLite).

``authtoken`` runs with ``delay_auth_decision = true``: it strips every
identity header a client sent, then marks a request without a valid token
``X-Identity-Status: Invalid`` and lets it through, and imagetags answers 401
(keystonemiddleware adds ``WWW-Authenticate``). Identity headers sent by a
client are never trusted.
"""
import datetime
import logging
import uuid

import fixtures
from keystonemiddleware import fixture as ksm_fixture
import testtools
import webob

from imagetags import db
from imagetags.tests import fixtures as it_fixtures

OWNER, OTHER = 'p-owner', 'p-other'
WWW_AUTHENTICATE = 'http://127.0.0.1:5000/v3'
# What a client might send to pass for an admin of the owner's project.
SPOOFED = {
    'X-Identity-Status': 'Confirmed',
    'X-Roles': 'admin,member,reader',
    'X-Role': 'admin',
    'X-Project-Id': OWNER,
    'X-Tenant-Id': OWNER,
    'X-Tenant': OWNER,
    'X-User-Id': 'u-admin',
    'X-Is-Admin-Project': 'True',
    'X-Service-Identity-Status': 'Confirmed',
    'X-Service-Roles': 'admin,service',
    'OpenStack-System-Scope': 'all',
}


class KeystonePipelineTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        # keystonemiddleware's warnings (in-process token cache) go to the
        # test's details instead of stderr.
        self.useFixture(fixtures.FakeLogger(level=logging.INFO))
        self.tokens = self.useFixture(ksm_fixture.AuthTokenFixture())
        database = self.useFixture(it_fixtures.Database('sqlite'))
        self.options = it_fixtures.merge(database.options, {
            # Never contacted: only named in WWW-Authenticate on a 401.
            'keystone_authtoken': {
                'www_authenticate_uri': WWW_AUTHENTICATE}})
        self.app = self.load()
        self.driver = db.load_driver(self.useFixture(
            it_fixtures.ConfigDir(self.options)).conf())
        self.image = self.new_image(['keep'])

    def load(self, **options):
        conf_dir = self.useFixture(it_fixtures.ConfigDir(
            it_fixtures.merge(self.options, options)))
        return conf_dir.loadapp('main')

    def new_image(self, tags=(), owner=OWNER, visibility='private'):
        return it_fixtures.new_image(self.driver, tags, owner, visibility)

    def token(self, project=OWNER, roles=('member', 'reader'), **kwargs):
        token_id = uuid.uuid4().hex
        # add_token_data returns nothing: name the token ourselves.
        self.tokens.add_token_data(token_id=token_id, project_id=project,
                                   user_id='u-' + project,
                                   role_list=list(roles), **kwargs)
        return token_id

    def request(self, method, path, headers=None, app=None):
        req = webob.Request.blank(path, method=method, headers=headers or {})
        return req.get_response(app or self.app)

    def tag(self, method, tag, headers=None, image=None, app=None):
        return self.request(method, '/v2/images/%s/tags/%s' % (
            image or self.image, tag), headers, app)

    def tags(self, image=None):
        return self.driver.show_image(image or self.image)['tags']

    def assertUnauthorized(self, resp):
        self.assertEqual(401, resp.status_int, resp.text)
        self.assertEqual('Keystone uri="%s"' % WWW_AUTHENTICATE,
                         resp.headers['WWW-Authenticate'])
        self.assertTrue(resp.headers['X-Openstack-Request-Id'].startswith(
            'req-'))

    def assertUnchanged(self):
        self.assertEqual(['keep'], self.tags())

    def test_valid_token_put_and_delete_204(self):
        token = self.token()
        resp = self.tag('PUT', 'new', {'X-Auth-Token': token})
        self.assertEqual(204, resp.status_int, resp.text)
        self.assertEqual(b'', resp.body)
        self.assertEqual('0', resp.headers['Content-Length'])
        self.assertTrue(resp.headers['X-Openstack-Request-Id'].startswith(
            'req-'))
        self.assertEqual(['keep', 'new'], self.tags())
        resp = self.tag('DELETE', 'keep', {'X-Auth-Token': token})
        self.assertEqual(204, resp.status_int, resp.text)
        self.assertEqual(['new'], self.tags())
        resp = self.tag('DELETE', 'keep', {'X-Auth-Token': token})
        self.assertEqual(404, resp.status_int)

    def test_roles_come_from_the_token(self):
        resp = self.tag('PUT', 'x', {'X-Auth-Token': self.token(
            roles=['reader'])})
        self.assertEqual(403, resp.status_int)
        resp = self.tag('PUT', 'x', {'X-Auth-Token': self.token(
            project=OTHER)})
        self.assertEqual(404, resp.status_int)
        self.assertIn('Image %s not found.' % self.image, resp.text)
        self.assertUnchanged()
        resp = self.tag('PUT', 'x', {'X-Auth-Token': self.token(
            project=OTHER, roles=['admin', 'member', 'reader'])})
        self.assertEqual(204, resp.status_int)
        self.assertEqual(['keep', 'x'], self.tags())

    def test_no_token_401(self):
        self.assertUnauthorized(self.tag('PUT', 'x'))
        self.assertUnauthorized(self.tag('DELETE', 'keep'))
        self.assertUnchanged()

    def test_bad_token_401(self):
        self.assertUnauthorized(self.tag('PUT', 'x', {'X-Auth-Token': 'bad'}))
        self.assertUnauthorized(self.tag('DELETE', 'keep',
                                         {'X-Auth-Token': 'bad'}))
        self.assertUnchanged()

    def test_expired_token_401(self):
        past = datetime.datetime.now(datetime.timezone.utc).replace(
            tzinfo=None) - datetime.timedelta(minutes=5)
        token = self.token(expires=past)
        self.assertUnauthorized(self.tag('DELETE', 'keep',
                                         {'X-Auth-Token': token}))
        self.assertUnchanged()

    def test_identity_headers_without_token_are_not_trusted(self):
        self.assertUnauthorized(self.tag('PUT', 'x', SPOOFED))
        self.assertUnauthorized(self.tag('DELETE', 'keep', SPOOFED))
        self.assertUnchanged()

    def test_identity_headers_with_bad_token_are_not_trusted(self):
        headers = dict(SPOOFED, **{'X-Auth-Token': 'bad'})
        self.assertUnauthorized(self.tag('PUT', 'x', headers))
        self.assertUnauthorized(self.tag('DELETE', 'keep', headers))
        self.assertUnchanged()

    def test_identity_headers_do_not_add_to_a_valid_token(self):
        # Another project's member, and the owner's reader, each claiming
        # admin of the owner's project (and system scope) in headers.
        for token, status in ((self.token(project=OTHER), 404),
                              (self.token(roles=['reader']), 403)):
            headers = dict(SPOOFED, **{'X-Auth-Token': token})
            self.assertEqual(status, self.tag('PUT', 'x', headers).status_int)
            self.assertEqual(status,
                             self.tag('DELETE', 'keep', headers).status_int)
        self.assertUnchanged()

    def test_anonymous_access_is_read_only(self):
        app = self.load(DEFAULT={'allow_anonymous_access': True})
        for headers in ({}, {'X-Auth-Token': 'bad'}, SPOOFED):
            self.assertEqual(403, self.tag('PUT', 'x', headers,
                                           app=app).status_int)
            self.assertEqual(403, self.tag('DELETE', 'keep', headers,
                                           app=app).status_int)
        self.assertUnchanged()
        resp = self.tag('PUT', 'x', {'X-Auth-Token': self.token()}, app=app)
        self.assertEqual(204, resp.status_int)

    def test_versions_and_healthcheck_without_token(self):
        for headers in ({}, {'X-Auth-Token': 'bad'}):
            resp = self.request('GET', '/', headers)
            self.assertEqual(300, resp.status_int)
            self.assertEqual('v2.18', resp.json['versions'][0]['id'])
            resp = self.request('GET', '/versions', headers)
            self.assertEqual(200, resp.status_int)
            self.assertEqual('CURRENT', resp.json['versions'][0]['status'])
            resp = self.request('GET', '/healthcheck', headers)
            self.assertEqual((200, b'OK'), (resp.status_int, resp.body))

    def test_other_paths(self):
        self.assertUnauthorized(self.request('GET', '/v2/images/x'))
        resp = self.request('GET', '/v2/images/x',
                            {'X-Auth-Token': self.token()})
        self.assertEqual(404, resp.status_int)
