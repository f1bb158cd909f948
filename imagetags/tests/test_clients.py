"""Real clients, unchanged, against imagetags served by gunicorn on loopback.

The server runs the SQL driver on SQLite and the paste pipeline
``request_id http_proxy_to_wsgi noauth imagetags standin``: imagetags in
filter mode in front of a stand-in image API (``imagetags.tests.standin``)
that answers everything else the clients call (version discovery, schemas,
``GET /v2/images/{id}``) from the same database, and logs every request it
sees, so the tests can check that no tag call ever passed the filter.

Identity: the development ``noauth`` filter turns a token
``user:project:roles`` into identity headers (the CLIs can only send a
token); the Python APIs send the identity headers themselves through a
keystoneauth session. Every test checks the database through the driver.

One gunicorn per test class.
"""
import http.client
import os
import shutil
import subprocess
import sys
import urllib.parse
import uuid

import fixtures
import glanceclient
from glanceclient import exc as glance_exc
from keystoneauth1 import noauth as ks_noauth
from keystoneauth1 import session as ks_session
import openstack.connection
from openstack import exceptions as sdk_exc
from tempest.lib import auth as tempest_auth
from tempest.lib.common.utils import data_utils
from tempest.lib import exceptions as lib_exc
from tempest.lib.services.image.v2 import images_client
import testtools
from testtools import content

from imagetags import db
from imagetags.tests import fixtures as it_fixtures
from imagetags.tests import standin

OWNER, OTHER = 'p-owner', 'p-other'
MEMBER_TOKEN = 'u-owner:%s:member,reader' % OWNER
READER_TOKEN = 'u-reader:%s:reader' % OWNER
OTHER_TOKEN = 'u-other:%s:member,reader' % OTHER
FORBIDDEN = 'You are not authorized to complete modify_image action.'
BIN = os.path.dirname(sys.executable)

PASTE = """\
[pipeline:clients]
pipeline = request_id http_proxy_to_wsgi noauth imagetags standin

[filter:imagetags]
use = egg:imagetags#imagetags

[app:standin]
paste.app_factory = imagetags.tests.standin:app_factory
calls_log = %(here)s/standin-calls.log

[filter:noauth]
use = egg:imagetags#noauth

[filter:request_id]
use = egg:oslo.middleware#request_id

[filter:http_proxy_to_wsgi]
use = egg:oslo.middleware#http_proxy_to_wsgi
oslo_config_project = imagetags
"""


class ClientServer(fixtures.Fixture):
    """gunicorn: imagetags filter + stand-in image API, SQL driver on SQLite.

    ``.url``, ``.driver`` (the same database), ``.calls_log`` (the stand-in's
    request log), ``.home`` (a HOME for CLI subprocesses).
    """

    def _setUp(self):
        database = self.useFixture(it_fixtures.Database('sqlite'))
        self.config_dir = self.useFixture(it_fixtures.ConfigDir(
            database.options, PASTE))
        self.url = self.useFixture(it_fixtures.Gunicorn(
            self.config_dir, 'clients', workers=1)).url
        self.driver = db.load_driver(self.config_dir.conf())
        self.calls_log = os.path.join(self.config_dir.path,
                                      'standin-calls.log')
        self.home = self.useFixture(fixtures.TempDir()).path


class ClientTestCase(testtools.TestCase):
    """One server per class; each test makes its own images."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = ClientServer()
        cls.server.setUp()  # cleans itself up if it fails

    @classmethod
    def tearDownClass(cls):
        cls.server.cleanUp()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.url = self.server.url
        self.driver = self.server.driver
        self._seen = len(standin.calls(self.server.calls_log))
        self.addCleanup(self.assertNoTagCallReachedStandIn)

    def new_image(self, tags=(), owner=OWNER, visibility='private'):
        return it_fixtures.new_image(self.driver, tags, owner, visibility)

    def tags(self, image_id):
        return self.driver.show_image(image_id)['tags']

    def standin_calls(self):
        """What reached the stand-in during this test."""
        return standin.calls(self.server.calls_log)[self._seen:]

    def assertNoTagCallReachedStandIn(self):
        tag_calls = [c for c in self.standin_calls() if '/tags' in c[1]]
        self.assertEqual([], tag_calls)

    def run_cli(self, *argv, expect_rc=0, env=None):
        full_env = {k: v for k, v in os.environ.items()
                    if not k.startswith('OS_')}
        full_env.update(HOME=self.server.home, LC_ALL='C.UTF-8',
                        PYTHONWARNINGS='ignore', **(env or {}))
        proc = subprocess.run(argv, env=full_env, capture_output=True,
                              text=True, timeout=60)
        name = '%s-%d' % (os.path.basename(argv[0]), self.getUniqueInteger())
        self.addDetail(name + '-stdout', content.text_content(proc.stdout))
        self.addDetail(name + '-stderr', content.text_content(proc.stderr))
        self.assertEqual(expect_rc, proc.returncode,
                         'stdout: %s\nstderr: %s' % (proc.stdout, proc.stderr))
        return proc


def header_session(url, project=OWNER, roles='member,reader', user='u-test'):
    """A keystoneauth session that sends identity headers (no Keystone)."""
    return ks_session.Session(
        auth=ks_noauth.NoAuth(endpoint=url),
        additional_headers={'X-Identity-Status': 'Confirmed',
                            'X-Roles': roles, 'X-Project-Id': project,
                            'X-User-Id': user})


class GlanceCLITest(ClientTestCase):
    """``glance image-tag-update`` / ``image-tag-delete`` as subprocesses."""

    def glance(self, token, *args, expect_rc=0):
        return self.run_cli(os.path.join(BIN, 'glance'), '--os-image-url',
                            self.url, '--os-auth-token', token, *args,
                            expect_rc=expect_rc)

    def test_tag_update(self):
        image = self.new_image(['old'])
        out = self.glance(MEMBER_TOKEN, 'image-tag-update', image, 'new')
        self.assertEqual(['old', 'new'], self.tags(image))
        # The printout comes from the stand-in's GET /v2/images/{id}.
        self.assertIn(image, out.stdout)
        self.assertIn("'old', 'new'", out.stdout)
        calls = self.standin_calls()
        self.assertIn(('GET', '/versions'), calls)
        self.assertIn(('GET', '/v2/schemas/image'), calls)
        self.assertIn(('GET', '/v2/images/' + image), calls)

    def test_tag_delete(self):
        image = self.new_image(['a', 'b'])
        out = self.glance(MEMBER_TOKEN, 'image-tag-delete', image, 'a')
        self.assertEqual('', out.stdout)
        self.assertEqual(['b'], self.tags(image))
        self.assertIn(('GET', '/versions'), self.standin_calls())

    def test_unicode_and_space_round_trip(self):
        image = self.new_image()
        tag = 'né tag ü'
        self.glance(MEMBER_TOKEN, 'image-tag-update', image, tag)
        self.assertEqual([tag], self.tags(image))
        self.glance(MEMBER_TOKEN, 'image-tag-delete', image, tag)
        self.assertEqual([], self.tags(image))

    def test_delete_unknown_tag_is_404(self):
        image = self.new_image(['a'])
        out = self.glance(MEMBER_TOKEN, 'image-tag-delete', image, 'nope',
                          expect_rc=1)
        self.assertIn('404 Not Found', out.stderr)
        self.assertEqual(['a'], self.tags(image))

    def test_update_unknown_image_is_404(self):
        image = str(uuid.uuid4())
        out = self.glance(MEMBER_TOKEN, 'image-tag-update', image, 'x',
                          expect_rc=1)
        self.assertIn('404 Not Found: Image %s not found.' % image,
                      out.stderr)

    def test_reader_is_forbidden(self):
        # glanceclient percent-encodes the token (u%3Ap%3Areader): the
        # noauth filter must decode it, or the caller becomes an admin.
        image = self.new_image(['a'])
        out = self.glance(READER_TOKEN, 'image-tag-update', image, 'x',
                          expect_rc=1)
        self.assertIn('403 Forbidden: ' + FORBIDDEN, out.stderr)
        out = self.glance(READER_TOKEN, 'image-tag-delete', image, 'a',
                          expect_rc=1)
        self.assertIn('403 Forbidden: ' + FORBIDDEN, out.stderr)
        self.assertEqual(['a'], self.tags(image))


class GlanceClientAPITest(ClientTestCase):
    """glanceclient's Python API: ``client.image_tags.update/delete``."""

    def client(self, **kwargs):
        return glanceclient.Client('2', session=header_session(
            self.url, **kwargs), endpoint_override=self.url)

    def test_update_then_delete(self):
        image = self.new_image()
        client = self.client()
        client.image_tags.update(image, 'tag1')
        self.assertEqual(['tag1'], self.tags(image))
        client.image_tags.update(image, 'tag1')  # no-op, still 204
        self.assertEqual(['tag1'], self.client(
            roles='reader').images.get(image)['tags'])
        client.image_tags.delete(image, 'tag1')
        self.assertEqual([], self.tags(image))

    def test_request_id(self):
        image = self.new_image()
        result = self.client().image_tags.update(image, 't')
        self.assertEqual(1, len(result.request_ids))
        self.assertTrue(result.request_ids[0].startswith('req-'))

    def test_delete_unknown_tag_is_not_found(self):
        image = self.new_image(['a'])
        self.assertRaises(glance_exc.HTTPNotFound,
                          self.client().image_tags.delete, image, 'b')
        self.assertEqual(['a'], self.tags(image))

    def test_unknown_image_is_not_found(self):
        image = str(uuid.uuid4())
        e = self.assertRaises(glance_exc.HTTPNotFound,
                              self.client().image_tags.update, image, 'a')
        self.assertIn('Image %s not found.' % image, str(e))

    def test_other_projects_private_image_is_not_found(self):
        image = self.new_image(['a'], owner=OTHER)
        client = self.client()
        self.assertRaises(glance_exc.HTTPNotFound,
                          client.image_tags.update, image, 'b')
        self.assertRaises(glance_exc.HTTPNotFound,
                          client.image_tags.delete, image, 'a')
        self.assertEqual(['a'], self.tags(image))

    def test_reader_is_forbidden(self):
        image = self.new_image(['a'])
        client = self.client(roles='reader')
        e = self.assertRaises(glance_exc.HTTPForbidden,
                              client.image_tags.update, image, 'b')
        self.assertIn(FORBIDDEN, str(e))
        self.assertRaises(glance_exc.HTTPForbidden,
                          client.image_tags.delete, image, 'a')
        self.assertEqual(['a'], self.tags(image))

    def test_token_client(self):
        # What the CLI does: glanceclient's own HTTP client with a token.
        image = self.new_image()
        client = glanceclient.Client('2', self.url, token=MEMBER_TOKEN)
        client.image_tags.update(image, 'a,b;c')
        self.assertEqual(['a,b;c'], self.tags(image))
        client.image_tags.delete(image, 'a,b;c')
        self.assertEqual([], self.tags(image))
        self.assertRaises(glance_exc.HTTPForbidden, glanceclient.Client(
            '2', self.url, token=READER_TOKEN).image_tags.update, image, 'x')


class OpenStackSDKTest(ClientTestCase):
    """openstacksdk: ``conn.image.add_tag`` / ``conn.image.remove_tag``."""

    def conn(self, **kwargs):
        return openstack.connection.Connection(
            session=header_session(self.url, **kwargs),
            image_endpoint_override=self.url)

    def test_add_then_remove(self):
        image_id = self.new_image(['a'])
        conn = self.conn()
        conn.image.add_tag(image_id, 'b')
        self.assertEqual(['a', 'b'], self.tags(image_id))
        conn.image.remove_tag(image_id, 'a')
        self.assertEqual(['b'], self.tags(image_id))
        # Discovery (GET /) came from the stand-in; the tag calls did not.
        self.assertIn(('GET', '/'), self.standin_calls())

    def test_add_to_fetched_image(self):
        image_id = self.new_image()
        conn = self.conn()
        image = conn.image.get_image(image_id)
        self.assertEqual([], image.tags)
        conn.image.add_tag(image, 'x y')
        self.assertEqual(['x y'], image.tags)
        self.assertEqual(['x y'], self.tags(image_id))
        conn.image.remove_tag(image, 'x y')
        self.assertEqual([], image.tags)
        self.assertEqual([], self.tags(image_id))

    def test_remove_unknown_tag_is_not_found(self):
        image = self.new_image(['a'])
        self.assertRaises(sdk_exc.NotFoundException,
                          self.conn().image.remove_tag, image, 'b')
        self.assertEqual(['a'], self.tags(image))

    def test_unknown_image_is_not_found(self):
        image = str(uuid.uuid4())
        e = self.assertRaises(sdk_exc.NotFoundException,
                              self.conn().image.add_tag, image, 'a')
        self.assertIn('Image %s not found.' % image, str(e))

    def test_reader_is_forbidden(self):
        image = self.new_image(['a'])
        conn = self.conn(roles='reader')
        e = self.assertRaises(sdk_exc.ForbiddenException,
                              conn.image.add_tag, image, 'b')
        self.assertIn(FORBIDDEN, str(e))
        self.assertRaises(sdk_exc.ForbiddenException,
                          conn.image.remove_tag, image, 'a')
        self.assertEqual(['a'], self.tags(image))

    def test_admin_token_auth(self):
        # The token path through the noauth filter, as clouds.yaml would do
        # it against a no-auth endpoint.
        image = self.new_image()
        conn = openstack.connection.Connection(
            auth_type='admin_token',
            auth={'endpoint': self.url, 'token': MEMBER_TOKEN},
            image_endpoint_override=self.url)
        conn.image.add_tag(image, 'a')
        self.assertEqual(['a'], self.tags(image))
        conn.image.remove_tag(image, 'a')
        self.assertEqual([], self.tags(image))


class OpenStackClientCLITest(ClientTestCase):
    """``openstack image unset --tag`` as a subprocess (DELETE per tag)."""

    def openstack(self, token, *args, expect_rc=0):
        # OS_IMAGE_ENDPOINT_OVERRIDE (openstacksdk's image_endpoint_override;
        # there is no command line option for it): the image API is then
        # found by discovery (GET / on the stand-in), as with a catalog's
        # unversioned endpoint. Without it, admin_token's endpoint is used
        # as is: GET /images/{id} with no /v2.
        return self.run_cli(
            os.path.join(BIN, 'openstack'), '--os-auth-type', 'admin_token',
            '--os-endpoint', self.url, '--os-token', token, *args,
            expect_rc=expect_rc, env={'OS_IMAGE_ENDPOINT_OVERRIDE': self.url})

    def test_unset_tags(self):
        image = self.new_image(['a', 'b', 'c'])
        self.openstack(MEMBER_TOKEN, 'image', 'unset', '--tag', 'a',
                       '--tag', 'c', image)
        self.assertEqual(['b'], self.tags(image))
        self.assertIn(('GET', '/v2/images/' + image), self.standin_calls())

    def test_unset_unknown_tag_or_as_reader_fails(self):
        # Any failure is logged as "nonexistent tag" and counted.
        image = self.new_image(['a'])
        out = self.openstack(MEMBER_TOKEN, 'image', 'unset', '--tag', 'nope',
                             '--tag', 'a', image, expect_rc=1)
        self.assertIn("tag unset failed, 'nope' is a nonexistent tag",
                      out.stderr)
        self.assertIn('Failed to unset 1 of 2 tags.', out.stderr)
        self.assertEqual([], self.tags(image))
        image = self.new_image(['a'])
        out = self.openstack(READER_TOKEN, 'image', 'unset', '--tag', 'a',
                             image, expect_rc=1)
        self.assertIn('Failed to unset 1 of 1 tags.', out.stderr)
        self.assertEqual(['a'], self.tags(image))


class TokenAuthProvider(tempest_auth.AuthProvider):
    """A Tempest auth provider with a fixed token and endpoint (no Keystone).

    Requests are decorated as ``KeystoneAuthProvider`` does: ``X-Auth-Token``
    and ``<endpoint>/<api_version>/<url>``.
    """

    def __init__(self, token, endpoint):
        super().__init__(tempest_auth.KeystoneV3Credentials(
            user_id='u', project_id='p', password='unused'))
        self.token = token
        self.endpoint = endpoint

    def _decorate_request(self, filters, method, url, headers=None,
                          body=None, auth_data=None):
        headers = dict(headers or {}, **{'X-Auth-Token': self.token})
        return '%s/%s' % (self.base_url(filters), url), headers, body

    def _get_auth(self):
        return self.token, {}

    def _fill_credentials(self, auth_data_body):
        pass

    def is_expired(self, auth_data):
        return False

    def base_url(self, filters, auth_data=None):
        return '%s/%s' % (self.endpoint, filters.get('api_version', ''))


class TempestTest(ClientTestCase):
    """Tempest's ``ImagesClient`` and its image tag tests, mirrored.

    ``tempest.api.image.v2.test_images_tags`` and ``..._negative`` need a
    Keystone and a full Glance (they create images through the API); here the
    image is made in the database and read back through the stand-in's
    ``show_image``, and the tag calls are Tempest's own.
    """

    def client(self, token=MEMBER_TOKEN):
        return images_client.ImagesClient(
            TokenAuthProvider(token, self.url), 'image', 'RegionOne')

    def test_update_delete_tags_for_image(self):
        # test_images_tags.ImagesTagsTest (10407036-...)
        image = self.new_image()
        tag = data_utils.rand_name(name='tag')
        client, reader = self.client(), self.client(READER_TOKEN)
        resp = client.add_image_tag(image, tag)
        self.assertEqual(204, resp.response.status)
        self.assertIn(tag, reader.show_image(image)['tags'])
        self.assertEqual([tag], self.tags(image))
        resp = client.delete_image_tag(image, tag)
        self.assertEqual(204, resp.response.status)
        self.assertNotIn(tag, reader.show_image(image)['tags'])
        self.assertEqual([], self.tags(image))

    def test_update_tags_for_non_existing_image(self):
        # test_images_tags_negative (8cd30f82-...)
        tag = data_utils.rand_name(name='tag')
        self.assertRaises(lib_exc.NotFound, self.client().add_image_tag,
                          data_utils.rand_uuid(), tag)

    def test_delete_non_existing_tag(self):
        # test_images_tags_negative (39c023a2-...)
        image = self.new_image(['keep'])
        tag = data_utils.rand_name(name='non-exist-tag')
        self.assertRaises(lib_exc.NotFound, self.client().delete_image_tag,
                          image, tag)
        self.assertEqual(['keep'], self.tags(image))

    def test_reader_is_forbidden(self):
        image = self.new_image(['keep'])
        e = self.assertRaises(lib_exc.Forbidden,
                              self.client(READER_TOKEN).add_image_tag,
                              image, 'x')
        self.assertIn(FORBIDDEN, str(e))
        self.assertEqual(['keep'], self.tags(image))


class RawHTTPTest(ClientTestCase):
    """The API document's request, with http.client and with curl."""

    def request(self, method, image, tag, token=MEMBER_TOKEN):
        url = urllib.parse.urlsplit(self.url)
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        self.addCleanup(conn.close)
        conn.request(method, '/v2/images/%s/tags/%s' % (
            image, urllib.parse.quote(tag)), headers={'X-Auth-Token': token})
        resp = conn.getresponse()
        return resp, resp.read()

    def test_delete_204_no_content(self):
        image = self.new_image(['a', 'b'])
        resp, body = self.request('DELETE', image, 'a')
        self.assertEqual((204, 'No Content', b''),
                         (resp.status, resp.reason, body))
        # imagetags sends Content-Length: 0 (as Glance); gunicorn drops it on
        # the wire for a 204 (RFC 9110 section 8.6).
        self.assertIn(resp.getheader('Content-Length'), (None, '0'))
        self.assertEqual('text/html; charset=UTF-8',
                         resp.getheader('Content-Type'))
        self.assertTrue(resp.getheader('X-Openstack-Request-Id')
                        .startswith('req-'))
        self.assertEqual(['b'], self.tags(image))

    def test_delete_unknown_tag_404_not_found(self):
        image = self.new_image(['a'])
        resp, body = self.request('DELETE', image, 'nope')
        self.assertEqual((404, 'Not Found'), (resp.status, resp.reason))
        self.assertIn(b'The resource could not be found.', body)
        self.assertEqual(['a'], self.tags(image))

    def test_put_204(self):
        image = self.new_image()
        resp, body = self.request('PUT', image, 'new')
        self.assertEqual((204, 'No Content', b''),
                         (resp.status, resp.reason, body))
        self.assertEqual(['new'], self.tags(image))

    @testtools.skipUnless(shutil.which('curl'), 'curl is not installed')
    def test_curl(self):
        image = self.new_image(['a'])
        url = '%s/v2/images/%s/tags/%s' % (self.url, image, 'a')
        out = self.run_cli('curl', '-sS', '-i', '-X', 'DELETE', '-H',
                           'X-Auth-Token: ' + MEMBER_TOKEN, url)
        self.assertTrue(out.stdout.startswith('HTTP/1.1 204 No Content\n'),
                        out.stdout)
        self.assertEqual([], self.tags(image))
        out = self.run_cli('curl', '-sS', '-i', '-X', 'DELETE', '-H',
                           'X-Auth-Token: ' + MEMBER_TOKEN, url)
        self.assertTrue(out.stdout.startswith('HTTP/1.1 404 Not Found\n'),
                        out.stdout)
