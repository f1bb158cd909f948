"""The API through the real Paste pipeline, in app mode and in filter mode.

Walks glance-behaviour.md sections 1-4 (rows in the test names) and the
contract's deliberate differences. Every request goes through
oslo.middleware's request_id and the imagetags app or filter, in-process.
"""
import json
import uuid

from oslo_config import fixture as config_fixture
import testtools
import webob

from imagetags.tests import fixtures as it_fixtures

OWNER, OTHER, ACC, PEND = 'p-owner', 'p-other', 'p-shared-acc', 'p-shared-pend'
CALLERS = {
    'admin': {'X-Roles': 'admin,member,reader', 'X-Project-Id': 'p-admin'},
    'owner-member': {'X-Roles': 'member,reader', 'X-Project-Id': OWNER},
    'owner-reader': {'X-Roles': 'reader', 'X-Project-Id': OWNER},
    'other': {'X-Roles': 'member,reader', 'X-Project-Id': OTHER},
    'shared-acc': {'X-Roles': 'member,reader', 'X-Project-Id': ACC},
    'shared-pend': {'X-Roles': 'member,reader', 'X-Project-Id': PEND},
}
IMAGES = ('private', 'public', 'shared', 'community', 'deactivated',
          'deleted', 'unknown', 'abc')
# glance-behaviour.md section 2: caller -> image -> status of PUT (and of a
# DELETE of a present tag); 'bare' is the bare 404, 'img' the image 404.
MATRIX = {
    'admin': dict.fromkeys(IMAGES[:5], 204),
    'owner-member': dict.fromkeys(IMAGES[:5], 204),
    'owner-reader': dict.fromkeys(IMAGES[:5], 403),
    'other': {'private': 'img', 'public': 403, 'shared': 'img',
              'community': 403, 'deactivated': 'img'},
    'shared-acc': {'private': 'img', 'public': 403, 'shared': 403,
                   'community': 403, 'deactivated': 'img'},
}
MATRIX['shared-pend'] = MATRIX['shared-acc']
SUFFIX = '<br /><br />\n\n\n'
E404BARE = {'message': 'The resource could not be found.' + SUFFIX,
            'code': '404 Not Found', 'title': 'Not Found'}
E403POL = {'message': 'You are not authorized to complete modify_image '
                      'action.' + SUFFIX,
           'code': '403 Forbidden', 'title': 'Forbidden'}
E401 = {'message': 'This server could not verify that you are authorized to '
                   'access the document you requested. Either you supplied '
                   'the wrong credentials (e.g., bad password), or your '
                   'browser does not understand how to supply the '
                   'credentials required.' + SUFFIX,
        'code': '401 Unauthorized', 'title': 'Unauthorized'}
HTML_404 = ('<html>\n <head>\n  <title>404 Not Found</title>\n </head>\n'
            ' <body>\n  <h1>404 Not Found</h1>\n  The resource could not be '
            'found.<br /><br />\n\n\n\n </body>\n</html>')
TEXT_404 = '404 Not Found\n\nThe resource could not be found.\n\n   '

FILTER_PASTE = """
[pipeline:main]
pipeline = request_id imagetags backend

[filter:request_id]
use = egg:oslo.middleware#request_id

[filter:imagetags]
use = egg:imagetags#imagetags

[app:backend]
paste.app_factory = imagetags.tests.test_api:echo_factory
"""


def echo_factory(global_conf, **local_conf):
    """The 'image service' behind the filter: echoes what reached it."""
    def echo(environ, start_response):
        body = environ['wsgi.input'].read(int(environ.get('CONTENT_LENGTH')
                                              or 0))
        doc = {'method': environ['REQUEST_METHOD'],
               'path': environ['PATH_INFO'].encode('latin-1').hex(),
               'query': environ.get('QUERY_STRING', ''),
               'body': body.hex(),
               'headers': sorted((k, v) for k, v in environ.items()
                                 if k.startswith('HTTP_'))}
        start_response('299 Passed', [('Content-Type', 'application/json')])
        return [json.dumps(doc).encode()]
    return echo


def image_404(image_id):
    return {'message': 'Image %s not found.%s' % (image_id, SUFFIX),
            'code': '404 Not Found', 'title': 'Not Found'}


class APITests:
    """Mixed into one class per (mode, backend)."""
    mode = 'app'
    backend = 'sqlite'
    options = {}

    def setUp(self):
        super().setUp()
        database = self.useFixture(it_fixtures.Database(self.backend))
        self.config = self.useFixture(it_fixtures.ConfigDir(
            it_fixtures.merge(database.options, self.options),
            paste=FILTER_PASTE if self.mode == 'filter' else None))
        self.app = self.config.loadapp(
            'main' if self.mode == 'filter' else 'noauth')
        # The driver instance inside the loaded app sees the same data; for
        # the memory driver it is the only one that does.
        self.driver = it_fixtures.tags_app(self.app).driver
        self.ids = {name: str(uuid.uuid4()) for name in IMAGES[:6]}
        self.ids.update(unknown=str(uuid.uuid4()), abc='abc')
        for name in IMAGES[:6]:
            visibility = 'private' if name in ('deactivated',
                                               'deleted') else name
            self.driver.create_image(
                self.ids[name], OWNER, visibility,
                status='deactivated' if name == 'deactivated' else 'active',
                members=[(ACC, 'accepted'), (PEND, 'pending')])
        self.driver.delete_image(self.ids['deleted'])
        self.image = self.ids['private']

    def set(self, **options):
        """Change [DEFAULT] options of the live app for this test."""
        conf = it_fixtures.tags_app(self.app).conf
        self.useFixture(config_fixture.Config(conf)).config(**options)

    def request(self, method, path, caller='owner-member', headers=None,
                body=None, environ=None):
        h = {'Accept': 'application/json'}
        if caller is not None:
            h.update(CALLERS[caller], **{'X-Identity-Status': 'Confirmed',
                                         'X-User-Id': 'u-' + caller})
        h.update(headers or {})
        req = webob.Request.blank(path, method=method, headers=h)
        if body is not None:
            req.body = body
        req.environ.update(environ or {})
        return req.get_response(self.app)

    def tag_path(self, tag, image=None):
        return '/v2/images/%s/tags/%s' % (image or self.image, tag)

    def put(self, tag, **kw):
        return self.request('PUT', self.tag_path(tag, kw.pop('image', None)),
                            **kw)

    def delete(self, tag, **kw):
        return self.request('DELETE',
                            self.tag_path(tag, kw.pop('image', None)), **kw)

    def tags(self, image=None):
        return self.driver.show_image(image or self.image)['tags']

    def assertStatus(self, status, resp, body=None):
        self.assertEqual(status, resp.status_int, resp.body)
        if body is not None:
            self.assertEqual(body, json.loads(resp.body))

    def assertRequestId(self, resp):
        rid = resp.headers.get('X-Openstack-Request-Id', '')
        self.assertTrue(rid.startswith('req-'), resp.headers)
        uuid.UUID(rid[4:])

    # Rows 1-3: the successful calls.
    def test_rows_1_to_3_put_put_delete(self):
        for resp in (self.put('tag1'), self.put('tag1'), self.delete('tag1')):
            self.assertEqual(204, resp.status_int, resp.body)
            self.assertEqual(b'', resp.body)
            self.assertEqual('text/html; charset=UTF-8',
                             resp.headers['Content-Type'])
            self.assertEqual('0', resp.headers['Content-Length'])
            self.assertRequestId(resp)
        self.assertEqual([], self.tags())

    def test_row_2_noop_put_writes_nothing(self):
        self.put('tag1')
        before = self.driver.show_image(self.image)['updated_at']
        self.assertStatus(204, self.put('tag1'))
        self.assertEqual(before,
                         self.driver.show_image(self.image)['updated_at'])

    def test_row_4_delete_absent(self):
        self.put('tag1')
        self.put('%C3%A9')
        for tag in ('tag2', 'Tag1', 'e%CC%81', 'tag1%20'):
            resp = self.delete(tag)
            self.assertStatus(404, resp, E404BARE)
            self.assertRequestId(resp)
        self.assertStatus(204, self.delete('tag1'))
        self.assertStatus(404, self.delete('tag1'), E404BARE)

    def test_section_2_caller_by_image(self):
        for caller, row in sorted(MATRIX.items()):
            for name in IMAGES:
                image = self.ids[name]
                want = row.get(name, 'img')
                if want == 204:
                    self.assertStatus(204, self.put('t', image=image,
                                                    caller=caller))
                    self.assertEqual(['t'], self.tags(image))
                    self.assertStatus(204, self.delete('t', image=image,
                                                       caller=caller))
                    self.assertStatus(404, self.delete('t', image=image,
                                                       caller=caller),
                                      E404BARE)
                    continue
                body = image_404(image) if want == 'img' else E403POL
                status = 404 if want == 'img' else want
                if name not in ('deleted', 'unknown', 'abc'):
                    # Present and absent tags answer alike.
                    self.assertStatus(204, self.put('t', image=image))
                for method in ('PUT', 'DELETE'):
                    for tag in ('t', 'absent'):
                        resp = self.request(method, self.tag_path(tag, image),
                                            caller=caller)
                        self.assertStatus(status, resp, body)
                        self.assertRequestId(resp)
                if name not in ('deleted', 'unknown', 'abc'):
                    self.assertEqual(['t'], self.tags(image))
                    self.assertStatus(204, self.delete('t', image=image))

    def test_section_2_identity_shapes(self):
        member_only = {'X-Roles': 'member', 'X-Project-Id': OWNER}
        self.assertStatus(204, self.put('a', headers=member_only))
        upper = {'X-Roles': 'Member,Reader', 'X-Project-Id': OWNER}
        self.assertStatus(204, self.put('b', headers=upper))
        admin = {'X-Roles': 'ADMIN', 'X-Project-Id': 'elsewhere'}
        self.assertStatus(204, self.put('c', headers=admin))
        tenant = {'X-Roles': 'member,reader', 'X-Tenant-Id': OWNER}
        tenant['X-Identity-Status'] = 'Confirmed'
        resp = self.request('PUT', self.tag_path('d'), caller=None,
                            headers=tenant)
        self.assertStatus(204, resp)
        # Row 7: no roles in the owning project: the bare 404.
        no_roles = {'X-Roles': '', 'X-Project-Id': OWNER}
        self.assertStatus(404, self.put('e', headers=no_roles), E404BARE)
        self.assertEqual(['a', 'b', 'c', 'd'], self.tags())

    def test_row_8_unauthenticated(self):
        for status in (None, 'Invalid', 'confirmed'):
            headers = {'X-Roles': 'admin', 'X-Project-Id': OWNER}
            if status:
                headers['X-Identity-Status'] = status
            for method in ('PUT', 'DELETE', 'GET'):
                resp = self.request(method, self.tag_path('t'), caller=None,
                                    headers=headers)
                self.assertStatus(401, resp, E401)
                self.assertRequestId(resp)
        self.assertEqual([], self.tags())

    def test_row_10_no_project(self):
        headers = {'X-Roles': 'member,reader', 'X-Project-Id': ''}
        self.assertStatus(404, self.put('t', headers=headers),
                          image_404(self.image))
        self.assertStatus(403, self.put('t', image=self.ids['public'],
                                        headers=headers), E403POL)

    def test_rows_11_to_13_length(self):
        resp = self.put('a' * 256)
        self.assertEqual(809, len(resp.body))
        body = json.loads(resp.body)
        self.assertEqual('400 Bad Request', body['code'])
        self.assertIn("'%s' is too long" % ('a' * 256), body['message'])
        self.assertRequestId(resp)
        # Checked before the image and the caller: row 11 and section 7.
        self.assertStatus(400, self.put('a' * 256, image=self.ids['unknown']))
        self.assertStatus(400, self.put('a' * 256, caller='owner-reader'))
        self.assertStatus(400, self.put('x' * 10000))
        # DELETE does not check the length (row 12).
        self.assertStatus(404, self.delete('a' * 256), E404BARE)
        # Characters, not bytes (deliberate difference 3).
        self.assertStatus(204, self.put('%C3%A9' * 255))
        self.assertStatus(400, self.put('%C3%A9' * 256))
        self.assertStatus(204, self.put('a' * 255))
        self.assertEqual(['é' * 255, 'a' * 255], self.tags())

    def test_row_14_body(self):
        msg = {'message': 'A body is not expected with this request.' + SUFFIX,
               'code': '400 Bad Request', 'title': 'Bad Request'}
        for body in (b'{"tags": ["x"]}', b'text', b'{bad json'):
            for method in ('PUT', 'DELETE'):
                resp = self.request(method, self.tag_path('t'), body=body)
                self.assertStatus(400, resp, msg)
        # A body beats a missing image (check order).
        self.assertStatus(400, self.request('PUT', self.tag_path(
            't', self.ids['unknown']), body=b'x'), msg)
        chunked = {'HTTP_TRANSFER_ENCODING': 'chunked'}
        self.assertStatus(400, self.request('PUT', self.tag_path('t'),
                                            environ=chunked), msg)
        for content_length in ('-1', 'abc', '1e3', ' 5'):
            self.assertStatus(400, self.request(
                'PUT', self.tag_path('t'),
                environ={'CONTENT_LENGTH': content_length}))
        self.assertEqual([], self.tags())
        fine = {'Content-Type': 'application/octet-stream',
                'Content-Length': '0'}
        self.assertStatus(204, self.put('t', headers=fine))
        self.assertStatus(204, self.delete('t', headers={
            'Content-Type': 'application/json'}))

    def test_rows_15_to_17_other_methods(self):
        self.put('t')
        for method, size in (('GET', 143), ('POST', 144), ('PATCH', 145),
                             ('OPTIONS', 147)):
            resp = self.request(method, self.tag_path('t'))
            self.assertEqual(405, resp.status_int)
            self.assertEqual('PUT, DELETE', resp.headers['Allow'])
            self.assertEqual(size, len(resp.body))
            self.assertEqual(
                'The method %s is not allowed for this resource. <br /><br />'
                '\n' % method, json.loads(resp.body)['message'])
            self.assertRequestId(resp)
        resp = self.request('HEAD', self.tag_path('t'))
        self.assertEqual(405, resp.status_int)
        self.assertEqual(b'', resp.body)
        self.assertEqual('PUT, DELETE', resp.headers['Allow'])
        self.assertEqual('0', resp.headers['Content-Length'])
        # No _method override (deliberate difference 7).
        resp = self.request('GET', self.tag_path('t') + '?_method=DELETE')
        self.assertEqual(405, resp.status_int)
        resp = self.request('POST', self.tag_path('u') + '?_method=PUT')
        self.assertEqual(405, resp.status_int)
        self.assertEqual(['t'], self.tags())

    def test_rows_20_to_22_quota(self):
        self.set(image_tag_quota=3)
        for tag in ('a', 'b', 'c'):
            self.assertStatus(204, self.put(tag))
        resp = self.put('d')
        self.assertStatus(413, resp, {
            'message': 'Image tag limit exceeded for image %s: The limit has '
                       'been exceeded on the number of allowed image tags. '
                       'Attempted: 4, Maximum: 3:%s' % (self.image, SUFFIX),
            'code': '413 Request Entity Too Large',
            'title': 'Request Entity Too Large'})
        self.assertEqual(273, len(resp.body))
        self.assertRequestId(resp)
        self.assertStatus(413, self.put('d', caller='admin'))
        self.assertStatus(204, self.put('c'))
        # Authorization comes first, then the quota (section 7).
        self.assertStatus(403, self.put('d', caller='owner-reader'))
        self.assertStatus(400, self.put('d' * 256))
        # Above a lowered quota: no-op PUT still 204 (difference 6).
        self.set(image_tag_quota=1)
        self.assertStatus(204, self.put('a'))
        self.assertIn('Attempted: 4, Maximum: 1:', self.put('e').json[
            'message'])
        self.assertStatus(204, self.delete('a'))
        self.assertEqual(['b', 'c'], self.tags())

    def test_rows_23_24_request_ids(self):
        for sent, echoed in (('abc', 'req-abc'), ('r' * 64, 'req-' + 'r' * 64),
                             ('req-' + 'x' * 60, 'req-' + 'x' * 60)):
            resp = self.put('t', headers={'X-Openstack-Request-Id': sent})
            self.assertStatus(204, resp)
            self.assertEqual(echoed, resp.headers['X-Openstack-Request-Id'])
        for sent in ('r' * 65, 'has space', 'é'):
            resp = self.put('t', headers={'X-Openstack-Request-Id': sent})
            self.assertStatus(204, resp)
            self.assertRequestId(resp)

    def test_errors_rendered_once_answered_each_with_its_own_id(self):
        # Error answers are rendered once per kind and Accept; each still
        # carries its own request's id, and differs where webob's does.
        first = {}
        for n in range(3):
            for accept in ('application/json', 'text/plain', 'text/html'):
                for method, path, status in (
                        ('DELETE', self.tag_path('absent'), 404),
                        ('POST', self.tag_path('t'), 405),
                        ('PATCH', self.tag_path('t'), 405),
                        ('DELETE', self.tag_path('t', 'no-such-image'), 404)):
                    resp = self.request(method, path, headers={
                        'Accept': accept,
                        'X-Openstack-Request-Id': 'r%d' % n})
                    self.assertStatus(status, resp)
                    self.assertEqual('req-r%d' % n,
                                     resp.headers['X-Openstack-Request-Id'])
                    answer = (resp.body, sorted(
                        (k, v) for k, v in resp.headers.items()
                        if k != 'X-Openstack-Request-Id'))
                    self.assertEqual(first.setdefault(
                        (accept, method, path), answer), answer)
        self.assertEqual(12, len(set(b for b, _ in first.values())))
        resp = self.request('PUT', self.tag_path('t'), caller=None)
        self.assertStatus(401, resp)
        self.assertRequestId(resp)

    def test_row_25_invalid_utf8(self):
        for method in ('PUT', 'DELETE'):
            resp = self.request(method, self.tag_path('a%FFb'))
            self.assertStatus(400, resp)
            self.assertIn('not valid UTF-8', resp.json['message'])
        self.assertEqual([], self.tags())

    def test_rows_27_29_prefix_and_query(self):
        self.assertStatus(204, self.request(
            'PUT', '/v2.1/images/%s/tags/a' % self.image))
        self.assertStatus(204, self.request(
            'PUT', '/v2.16/images/%s/tags/b' % self.image))
        self.assertStatus(204, self.put('c?foo=bar'))
        self.assertEqual(['a', 'b', 'c'], self.tags())

    def test_section_3_tag_forms(self):
        forms = {'tag1': 'tag1', 'TAG1': 'TAG1', 'my%20tag': 'my tag',
                 '%20tag%20': ' tag ', '%20': ' ', 'a+b': 'a+b', 'a,b': 'a,b',
                 'a;b': 'a;b', 'a%25b': 'a%b', 'a%3Fb': 'a?b', 'a%23b': 'a#b',
                 'k:v=1': 'k:v=1', '.': '.', '..': '..', 'a%00b': 'a\x00b',
                 'a%0Ab': 'a\nb', 'a%09b': 'a\tb',
                 '%E3%82%BF%E3%82%B0': 'タグ', '%E2%98%83': '☃',
                 '%C3%A9': 'é', "%27%20OR%201=1--": "' OR 1=1--"}
        for sent, stored in forms.items():
            self.assertStatus(204, self.put(sent))
            self.assertStatus(204, self.put(sent))
            self.assertEqual([stored], self.tags(), sent)
            self.assertStatus(204, self.delete(sent))
            self.assertStatus(404, self.delete(sent), E404BARE)
        self.assertStatus(204, self.put('a,b'))
        self.assertStatus(204, self.delete('a%2Cb'))

    def test_section_3_four_byte_characters(self):
        for tag in ('%F0%9F%98%80', 'a%F0%9F%98%80b'):
            for method in ('PUT', 'DELETE'):
                resp = self.request(method, self.tag_path(tag))
                self.assertStatus(400, resp)
                self.assertEqual("Param values can't contain 4 byte unicode."
                                 + SUFFIX, resp.json['message'])
        self.assertEqual([], self.tags())

    def test_section_3_json_created_tags_delete_through_the_url(self):
        self.driver.add_tag(_Admin(), self.image, 'タグ', -1, lambda i: None)
        self.driver.add_tag(_Admin(), self.image, 'é', -1, lambda i: None)
        self.assertStatus(204, self.put('%E3%82%BF%E3%82%B0'))
        self.assertEqual(['タグ', 'é'], self.tags())
        self.assertStatus(204, self.delete('%E3%82%BF%E3%82%B0'))
        self.assertStatus(204, self.delete('%C3%A9'))
        self.assertEqual([], self.tags())

    def test_section_3_slash(self):
        self.driver.add_tag(_Admin(), self.image, 'a/b', -1, lambda i: None)
        # Without the raw URI, %2F is a path separator: as Glance.
        for tag in ('a%2Fb', 'a/b'):
            resp = self.delete(tag)
            self.assertEqual(404 if self.mode == 'app' else 299,
                             resp.status_int)
        # With the raw URI (gunicorn, uwsgi) the tag is addressable.
        path = self.tag_path('a%2Fb')
        for key in ('RAW_URI', 'REQUEST_URI'):
            self.assertStatus(204, self.request('PUT', path, environ={
                key: path + '?x=1'}))
        self.assertStatus(204, self.request('DELETE', path, environ={
            'RAW_URI': path}))
        self.assertEqual([], self.tags())
        self.assertStatus(404, self.request('DELETE', path, environ={
            'RAW_URI': path}), E404BARE)

    def test_section_3_slash_from_the_raw_uri_only(self):
        # Middleware before imagetags (Glance's version negotiation) may
        # collapse "//" in PATH_INFO; the raw URI decides.
        for tag in ('/a', '/', 'a//b'):
            self.driver.add_tag(_Admin(), self.image, tag, -1, lambda i: None)
        for sent in ('%2Fa', '%2F', 'a%2F%2Fb'):
            raw = '/v2.1/images/%s/tags/%s' % (self.image, sent)
            resp = self.request('DELETE', self.tag_path('a'), environ={
                'RAW_URI': raw})
            self.assertStatus(204, resp)
        self.assertEqual([], self.tags())

    def test_image_without_owner_or_caller_without_project(self):
        # Glance's database layer refuses these whatever the policy says.
        ownerless = str(uuid.uuid4())
        self.driver.create_image(ownerless, None, 'private')
        self.driver.add_tag(_Admin(), ownerless, 'pre', -1, lambda i: None)
        no_project = {'X-Roles': 'member,reader',
                      'X-Identity-Status': 'Confirmed'}
        for method, tag, verb in (('PUT', 'x', 'update'),
                                  ('PUT', 'pre', 'update'),
                                  ('DELETE', 'pre', 'delete')):
            resp = self.request(method, self.tag_path(tag, ownerless),
                                caller=None, headers=no_project)
            self.assertStatus(403, resp, {
                'message': 'Not allowed to %s tags for image %s.%s' % (
                    verb, ownerless, SUFFIX),
                'code': '403 Forbidden', 'title': 'Forbidden'})
        self.assertEqual(['pre'], self.tags(ownerless))
        self.assertStatus(204, self.put('x', image=ownerless,
                                        caller='admin'))

    def test_section_4_accept(self):
        html = ('*/*', 'text/html', 'text/*',
                'application/json;q=0.5, text/html;q=0.9')
        for accept in html:
            resp = self.delete('absent', headers={'Accept': accept})
            self.assertEqual(404, resp.status_int)
            self.assertEqual('text/html; charset=UTF-8',
                             resp.headers['Content-Type'])
            self.assertEqual(HTML_404, resp.text)
        for accept in (None, 'text/plain', 'application/xml'):
            headers = {'Accept': accept} if accept else {}
            req = webob.Request.blank(self.tag_path('absent'),
                                      method='DELETE')
            req.headers.update(dict(CALLERS['owner-member'], **headers, **{
                'X-Identity-Status': 'Confirmed'}))
            resp = req.get_response(self.app)
            self.assertEqual('text/plain; charset=UTF-8',
                             resp.headers['Content-Type'])
            self.assertEqual(TEXT_404, resp.text)

    def test_anonymous_access_read_only(self):
        self.set(allow_anonymous_access=True)
        for image in (self.image, self.ids['unknown']):
            for method in ('PUT', 'DELETE'):
                resp = self.request(method, self.tag_path('t', image),
                                    caller=None)
                self.assertStatus(403, resp, {
                    'message': 'Access was denied to this resource.'
                               '<br /><br />\nRead-only access\n\n',
                    'code': '403 Forbidden', 'title': 'Forbidden'})
        self.assertEqual([], self.tags())


class _Admin:
    project_id = None
    is_admin = True


class FilterOnly:
    def test_other_requests_pass_untouched(self):
        cases = [('GET', '/v2/images/%s' % self.image, None),
                 ('PATCH', '/v2/images/%s' % self.image, b'[{"op": "x"}]'),
                 ('GET', '/v2/images/%s/tags' % self.image, None),
                 ('PUT', '/v2/images/%s/tags/' % self.image, None),
                 ('PUT', '/v2/images/%s/tags/a/b' % self.image, None),
                 ('DELETE', '/v2/images/%s/tags/t/' % self.image, None),
                 ('GET', '/versions', None),
                 ('POST', '/v2/images', b'{"name": "x"}'),
                 ('GET', '/v2/images/caf%C3%A9%FF', None),
                 ('GET', '/v3/images/x/tags/y', None)]
        for method, path, body in cases:
            for caller in ('owner-member', None):
                resp = self.request(method, path, caller=caller, body=body)
                self.assertEqual(299, resp.status_int, (method, path))
                seen = resp.json
                self.assertEqual(method, seen['method'])
                want = webob.Request.blank(path).environ['PATH_INFO']
                self.assertEqual(want.encode('latin-1').hex(), seen['path'])
                self.assertEqual((body or b'').hex(), seen['body'])
                self.assertNotIn('HTTP_X_OPENSTACK_REQUEST_ID',
                                 dict(seen['headers']))


class TestAppSQLite(APITests, testtools.TestCase):
    pass


class TestAppMemory(APITests, testtools.TestCase):
    backend = 'memory'


class TestFilterSQLite(FilterOnly, APITests, testtools.TestCase):
    mode = 'filter'
