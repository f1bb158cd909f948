"""Fuzzing the real paste pipeline in-process with hypothesis (issue 6
item 2).

Requests are raw PEP 3333 environs, as a server hands them over: PATH_INFO
is the percent-decoded path as latin-1 text, so any byte can reach the app
(invalid UTF-8, NUL, ``/`` from ``%2F`` with ``RAW_URI`` beside it), and
sometimes real Unicode (httpx's WSGI transport). Methods, bodies,
``Content-Length``, ``Accept``, identity headers and request ids are
arbitrary too. Every request goes to two apps, on the memory and the SQL
(SQLite) driver, loaded with the same images and tags. Properties:

* never a 5xx;
* nothing changes (tags, ``updated_at``) without a 204, and a 204 changes
  at most the one tag it names;
* both drivers answer every request the same (status, body, headers);
* a JSON error body is ``{"message", "code", "title"}``.

Runs are reproducible (``derandomize``: the same examples every run);
``IMAGETAGS_FUZZ_SCALE=10`` runs ten times as many examples per test.
"""
import io
import json
import os
import urllib.parse

import hypothesis
from hypothesis import strategies as st
import sqlalchemy as sa
import testtools
import webob

from imagetags.tests import fixtures as it_fixtures

SCALE = float(os.environ.get('IMAGETAGS_FUZZ_SCALE', '1'))


def settings(examples):
    """``examples`` per run, times ``$IMAGETAGS_FUZZ_SCALE`` (default 1)."""
    return hypothesis.settings(
        max_examples=max(1, int(examples * SCALE)), derandomize=True,
        database=None, deadline=None, print_blob=True,
        suppress_health_check=list(hypothesis.HealthCheck))


OWNER, OTHER, MEMBER, PENDING = 'p-owner', 'p-other', 'p-member', 'p-pending'
PROJECTS = [OWNER, OTHER, MEMBER, PENDING]
IMAGES = {
    '10000000-0000-4000-8000-000000000001': ('private', 'active'),
    '10000000-0000-4000-8000-000000000002': ('public', 'active'),
    '10000000-0000-4000-8000-000000000003': ('shared', 'active'),
    '10000000-0000-4000-8000-000000000004': ('community', 'active'),
    '10000000-0000-4000-8000-000000000005': ('private', 'deactivated'),
    'img-plain': ('shared', 'active'),
}
DELETED = '10000000-0000-4000-8000-000000000009'
TAGS = ['tag1', 'Tag1', 'a b', ' ', '\u00e9', '\u30bf\u30b0', '%', 'a,b',
        'a;b', 'a+b', '.', '..', 'a\x00b', 'a\nb', 'x' * 255,
        "'; DROP TABLE image_tags; --"]


def latin1(raw):
    """Bytes as PEP 3333 carries them in the environ."""
    return raw.decode('latin-1')


def utf8(text):
    return latin1(text.encode('utf-8'))


# -- strategies -------------------------------------------------------------
latin1_text = st.text(st.characters(max_codepoint=0xff), max_size=40)
any_text = st.text(st.characters(exclude_categories=['Cs']), max_size=40)
known_tag = st.sampled_from(TAGS).map(utf8)
tag_segment = st.one_of(
    known_tag,
    known_tag,
    any_text.map(utf8),                           # any code point
    st.binary(max_size=40).map(latin1),          # any bytes (invalid UTF-8)
    st.text('%0123456789abcdefABCDEFxyz/', max_size=20),   # escapes left
    st.integers(250, 1100).flatmap(lambda n: st.sampled_from(
        ['a' * n, '\u00e9' * (n // 2), '\u30bf' * (n // 3)])).map(utf8),
    any_text,                                     # already Unicode (httpx)
    st.just(''),
)
image_segment = st.one_of(
    st.sampled_from(sorted(IMAGES) + [DELETED]),
    st.sampled_from(sorted(IMAGES) + [DELETED]),
    st.sampled_from(sorted(IMAGES) + [DELETED]),
    st.sampled_from(sorted(IMAGES)).map(str.upper),
    st.sampled_from(["abc", "1' OR '1'='1", "x\x00y", 'i' * 300, '%00',
                     '10000000000040008000000000000001', '..', ' ']),
    any_text.map(utf8),
    st.binary(max_size=40).map(latin1),
)
prefix = st.sampled_from(['/v2/images/'] * 12 + [
    '/v2.1/images/', '/v2.18/images/', '/v2.19/images/', '/v1/images/',
    '/v3/images/', '/images/', '//v2/images/', '/V2/images/', ''])
suffix = st.sampled_from([''] * 12 + ['/', '/x', '//', '\n'])
method = st.sampled_from(['PUT'] * 8 + ['DELETE'] * 8 + [
    'GET', 'HEAD', 'POST', 'PATCH', 'OPTIONS', 'TRACE', 'put', 'FOO'])
content_length = st.one_of(
    st.none(), st.none(), st.none(), st.none(), st.just('0'), st.just(''),
    st.sampled_from(['-1', ' 0', '0 ', '1', '007', '\u0663', '+1', '1e3',
                     '0x10', '99999999999999999999999']),
    latin1_text)
accept = st.sampled_from(
    ['application/json', '*/*', 'text/html', 'text/plain', 'text/*',
     'application/xml', 'application/json;q=0.5, text/html;q=0.9', '',
     'application/json;q=0', ';;;', 'application/json; charset=bogus'])
roles = st.lists(st.sampled_from(
    ['admin', 'member', 'reader', 'Admin', 'MEMBER', 'Reader', '', ' member',
     'service', 'x']), max_size=4).map(','.join)
project = st.one_of(st.sampled_from(PROJECTS), st.just(''), latin1_text)
request_id = st.one_of(
    st.just('abc'), st.just('req-' + '0' * 32), st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0x7e), max_size=64),
    st.integers(65, 2000).map(lambda n: 'r' * n), latin1_text)
CONFIRMED = {'HTTP_X_IDENTITY_STATUS': 'Confirmed'}
PERSONAS = [
    dict(CONFIRMED, HTTP_X_ROLES='admin,member,reader',
         HTTP_X_PROJECT_ID='p-admin'),
    dict(CONFIRMED, HTTP_X_ROLES='member,reader', HTTP_X_PROJECT_ID=OWNER),
    dict(CONFIRMED, HTTP_X_ROLES='member', HTTP_X_PROJECT_ID=OWNER),
    dict(CONFIRMED, HTTP_X_ROLES='Member,Reader', HTTP_X_TENANT_ID=OWNER),
    dict(CONFIRMED, HTTP_X_ROLES='reader', HTTP_X_PROJECT_ID=OWNER),
    dict(CONFIRMED, HTTP_X_ROLES='', HTTP_X_PROJECT_ID=OWNER),
    dict(CONFIRMED, HTTP_X_ROLES='member,reader', HTTP_X_PROJECT_ID=OTHER),
    dict(CONFIRMED, HTTP_X_ROLES='member,reader', HTTP_X_PROJECT_ID=MEMBER),
    dict(CONFIRMED, HTTP_X_ROLES='member,reader', HTTP_X_PROJECT_ID=PENDING),
    dict(CONFIRMED, HTTP_X_ROLES='admin', HTTP_OPENSTACK_SYSTEM_SCOPE='all'),
    dict(CONFIRMED, HTTP_X_ROLES='member,reader'),
    {},
]
identity = st.one_of(
    st.sampled_from(PERSONAS), st.sampled_from(PERSONAS),
    st.sampled_from(PERSONAS),
    st.fixed_dictionaries({}, optional={
        'HTTP_X_IDENTITY_STATUS': st.sampled_from(
            ['Confirmed'] * 6 + ['confirmed', 'Invalid', '', 'Confirmed ']),
        'HTTP_X_ROLES': st.one_of(roles, latin1_text),
        'HTTP_X_PROJECT_ID': project,
        'HTTP_X_TENANT_ID': project,
        'HTTP_X_USER_ID': latin1_text,
        'HTTP_OPENSTACK_SYSTEM_SCOPE': st.sampled_from(['all', '', 'x']),
        'HTTP_X_DOMAIN_ID': st.sampled_from(['default', '']),
    }))
extras = st.fixed_dictionaries({}, optional={
    'HTTP_ACCEPT': st.one_of(accept, accept, latin1_text),
    'HTTP_X_OPENSTACK_REQUEST_ID': request_id,
    'HTTP_TRANSFER_ENCODING': st.sampled_from(['chunked', 'identity', '']),
    'CONTENT_TYPE': st.sampled_from(['application/json', 'text/plain', '']),
    'HTTP_X_HTTP_METHOD_OVERRIDE': st.sampled_from(['DELETE', 'PUT']),
})


@st.composite
def environs(draw, plausible=False):
    """Any request; ``plausible``: a known caller, image and method, most
    often a known tag, so that the decisions past 401/404 are exercised."""
    if plausible:
        image_id = draw(st.sampled_from(sorted(IMAGES) + [DELETED]))
        tag = draw(st.one_of(known_tag, known_tag, any_text.map(utf8)))
        path = '/v2/images/' + image_id + '/tags/' + tag
        env = {'REQUEST_METHOD': draw(st.sampled_from(['PUT', 'DELETE'])),
               'PATH_INFO': path, 'wsgi.input': io.BytesIO(),
               'HTTP_ACCEPT': draw(accept)}
        env.update(draw(st.sampled_from(PERSONAS)))
        return env
    image_id = draw(image_segment)
    tag = draw(tag_segment)
    path = draw(prefix) + image_id + '/tags/' + tag + draw(suffix)
    env = {
        'REQUEST_METHOD': draw(method),
        'PATH_INFO': path,
        'QUERY_STRING': draw(st.sampled_from(
            ['', '', '', '_method=DELETE', 'foo=bar', '%ff=%00'])),
    }
    env.update(draw(identity))
    env.update(draw(extras))
    body = draw(st.sampled_from([b''] * 4 + [b'{}', b'x', b'\x00' * 9]))
    length = draw(content_length)
    if length is None and body:
        length = str(len(body))
    if length is not None:
        env['CONTENT_LENGTH'] = length
    env['wsgi.input'] = io.BytesIO(body)
    if '/' in tag and draw(st.booleans()):
        # gunicorn's RAW_URI: the tag's '/' was sent as %2F.
        raw = urllib.parse.quote(tag.encode('latin-1', 'replace'), safe='')
        env['RAW_URI'] = (path[:-len(tag)] if tag and path.endswith(tag)
                          else path) + raw
    return env


# -- the apps ---------------------------------------------------------------
class Apps(testtools.TestCase):
    """The memory and SQLite apps, loaded with the same images and tags."""

    def setUp(self):
        super().setUp()
        self.apps = {}
        self.engines = {}
        for backend in ('memory', 'sqlite'):
            database = self.useFixture(it_fixtures.Database(backend))
            options = database.options
            if backend == 'sqlite':   # no fsync per commit: faster runs
                options = it_fixtures.merge(options, {
                    'database': {'sqlite_synchronous': False}})
            app = self.useFixture(it_fixtures.ConfigDir(
                options)).loadapp('noauth')
            driver = it_fixtures.tags_app(app).driver
            if database.url:   # plain SQLAlchemy, for quick snapshots
                self.engines[driver] = sa.create_engine(database.url)
                self.addCleanup(self.engines[driver].dispose)
            for image_id, (visibility, status) in IMAGES.items():
                driver.create_image(
                    image_id, OWNER, visibility, status,
                    members=[(MEMBER, 'accepted'), (PENDING, 'pending')])
            driver.create_image(DELETED, OWNER, 'public')
            for image_id in IMAGES:
                for tag in TAGS:
                    driver.add_tag(_admin(), image_id, tag, -1,
                                   lambda image: None)
            driver.delete_image(DELETED)
            self.apps[backend] = (app, driver)

    def snapshot(self, driver):
        """Every image's tags and updated_at (SQL: in one query)."""
        if driver not in self.engines:
            images = {}
            for image_id in IMAGES:
                image = driver.show_image(image_id)
                images[image_id] = (image['tags'], image['updated_at'])
            return images
        return it_fixtures.image_states(self.engines[driver], IMAGES)

    def call(self, environ):
        """Both apps, the same request; their answers, checked."""
        answers = {}
        for backend, (app, driver) in self.apps.items():
            env = dict(environ, **{'wsgi.input': io.BytesIO(
                environ['wsgi.input'].getvalue())})
            req = webob.Request.blank('/', environ=env)
            req.environ.update(env)
            before = self.snapshot(driver)
            resp = req.get_response(app)
            after = self.snapshot(driver)
            where = '%s: %r -> %s %r' % (backend, environ, resp.status,
                                         resp.body[:300])
            self.assertLess(resp.status_int, 500, where)
            self.check_change(environ, resp, before, after, where)
            self.check_body(environ, resp, where)
            answers[backend] = resp
        memory, sql = answers['memory'], answers['sqlite']
        self.assertEqual(_comparable(memory, environ),
                         _comparable(sql, environ), environ)
        return memory

    def check_change(self, environ, resp, before, after, where):
        changed = [i for i in IMAGES if before[i] != after[i]]
        if resp.status_int != 204:
            self.assertEqual([], changed, where)
            return
        self.assertLessEqual(len(changed), 1, where)
        for image_id in changed:
            old, new = set(before[image_id][0]), set(after[image_id][0])
            self.assertNotEqual(old, new, 'updated_at bumped by a no-op: '
                                + where)
            if environ['REQUEST_METHOD'] == 'PUT':
                self.assertEqual(1, len(new - old), where)
                self.assertEqual(set(), old - new, where)
            else:
                self.assertEqual(1, len(old - new), where)
                self.assertEqual(set(), new - old, where)

    def check_body(self, environ, resp, where):
        self.assertLessEqual(len([k for k, _ in resp.headerlist if k.lower()
                                  == 'x-openstack-request-id']), 1, where)
        if resp.status_int == 204 or environ['REQUEST_METHOD'] == 'HEAD':
            self.assertEqual(b'', resp.body, where)
        if resp.content_type == 'application/json':
            doc = json.loads(resp.body)
            self.assertEqual({'message', 'code', 'title'}, set(doc), where)
            self.assertTrue(doc['code'].startswith(str(resp.status_int)))


def _admin():
    from oslo_context import context
    return context.RequestContext(project_id=OWNER, is_admin=True,
                                  overwrite=False)


def _comparable(resp, environ):
    """Status, body and headers; a generated request id only as present."""
    headers = {k.lower(): v for k, v in resp.headerlist
               if k.lower() != 'x-openstack-request-id'}
    rid = resp.headers.get('X-Openstack-Request-Id')
    sent = environ.get('HTTP_X_OPENSTACK_REQUEST_ID')
    if rid is not None and sent not in (rid, rid[len('req-'):]):
        rid = 'generated'
    return resp.status, resp.body, headers, rid


class FuzzTest(Apps):

    @settings(200)
    @hypothesis.given(environs())
    def test_any_request(self, environ):
        self.call(environ)

    @settings(60)
    @hypothesis.given(st.lists(environs(plausible=True), min_size=1,
                               max_size=6))
    def test_sequences_of_known_callers(self, environs):
        for environ in environs:
            self.call(environ)

    @settings(100)
    @hypothesis.given(st.text(st.characters(
        max_codepoint=0xffff, exclude_categories=['Cs']),
        min_size=1, max_size=255).filter(lambda t: '/' not in t))
    def test_any_tag_round_trips(self, tag):
        """Every BMP tag up to 255 characters, as a server passes it."""
        image_id = sorted(IMAGES)[0]
        path = '/v2/images/%s/tags/%s' % (image_id, utf8(tag))
        owner = {'HTTP_X_IDENTITY_STATUS': 'Confirmed',
                 'HTTP_X_ROLES': 'member,reader',
                 'HTTP_X_PROJECT_ID': OWNER}
        present = tag in TAGS
        for verb, status in (('PUT', 204), ('PUT', 204), ('DELETE', 204),
                             ('DELETE', 404)):
            resp = self.call(dict(owner, REQUEST_METHOD=verb, PATH_INFO=path,
                                  **{'wsgi.input': io.BytesIO()}))
            self.assertEqual(status, resp.status_int, (verb, tag))
            for _, driver in self.apps.values():
                tags = driver.show_image(image_id)['tags']
                self.assertEqual(verb == 'PUT', tag in tags, (verb, tag))
        if present:   # put it back for the other examples
            for _, driver in self.apps.values():
                driver.add_tag(_admin(), image_id, tag, -1,
                               lambda image: None)

    @settings(40)
    @hypothesis.given(st.text(st.characters(
        max_codepoint=0xffff, exclude_categories=['Cs']),
        min_size=1, max_size=40).map(lambda t: t + '/' + t))
    def test_tag_with_slash_through_raw_uri(self, tag):
        """gunicorn's RAW_URI lets ``%2F`` address a tag containing '/'."""
        image_id = sorted(IMAGES)[0]
        prefix = '/v2/images/%s/tags/' % image_id
        owner = {'HTTP_X_IDENTITY_STATUS': 'Confirmed',
                 'HTTP_X_ROLES': 'member,reader',
                 'HTTP_X_PROJECT_ID': OWNER}
        for verb, status in (('PUT', 204), ('DELETE', 204), ('DELETE', 404)):
            resp = self.call(dict(
                owner, REQUEST_METHOD=verb, PATH_INFO=prefix + utf8(tag),
                RAW_URI=prefix + urllib.parse.quote(tag, safe=''),
                **{'wsgi.input': io.BytesIO()}))
            self.assertEqual(status, resp.status_int, (verb, tag))
