"""Entry points, factories, generated samples and the operator tools."""
import http.client
import importlib.metadata
import json
import os
import subprocess
import sys
import uuid

import fixtures
import sqlalchemy
import stevedore
import testtools
import webob
from oslo_middleware import request_id as oslo_request_id

from imagetags import conf as it_conf
from imagetags import db
from imagetags import deploy
from imagetags import policy
from imagetags import request_id
from imagetags.tests import fixtures as it_fixtures

ETC = os.path.join(it_fixtures.ROOT, 'etc', 'imagetags')
BIN = os.path.dirname(sys.executable)
MEMBER = {'X-Identity-Status': 'Confirmed', 'X-Roles': 'member,reader',
          'X-Project-Id': 'p1', 'Accept': 'application/json'}


def run(*args, **kw):
    return subprocess.run(args, capture_output=True, text=True, check=True,
                          cwd=it_fixtures.ROOT, **kw).stdout


class TestEntryPoints(testtools.TestCase):
    def test_every_entry_point_loads(self):
        expected = {
            'paste.app_factory': {'imagetags': deploy.app_factory},
            'paste.filter_factory': {
                'imagetags': deploy.filter_factory,
                'context': deploy.context_filter_factory},
            'paste.composite_factory': {'root': deploy.root_factory},
            'oslo.config.opts': {'imagetags': it_conf.list_opts},
            'oslo.policy.policies': {'imagetags': policy.list_rules},
            'oslo.policy.enforcer': {'imagetags': policy.get_enforcer},
        }
        for group, names in expected.items():
            for name, obj in names.items():
                mgr = stevedore.driver.DriverManager(group, name)
                self.assertIs(obj, mgr.driver, (group, name))
        for name in ('memory', 'sql'):
            stevedore.driver.DriverManager('imagetags.driver', name)
        stevedore.driver.DriverManager('paste.filter_factory', 'noauth')
        # oslo.middleware has a request_id too; paste names the egg.
        self.assertIs(request_id.RequestId, next(
            e for e in importlib.metadata.distribution(
                'imagetags').entry_points
            if e.group == 'paste.filter_factory' and e.name == 'request_id'
        ).load().__self__)


class TestWSGIServers(testtools.TestCase):
    def test_uwsgi_serves_imagetags_wsgi_api(self):
        # uwsgi looks ``application`` up in the module's namespace, where
        # imagetags.wsgi builds it only when asked (gunicorn asks):
        # imagetags.wsgi.api holds it. The raw URI is REQUEST_URI here.
        database = self.useFixture(it_fixtures.Database('sqlite'))
        config = self.useFixture(it_fixtures.ConfigDir(database.options))
        server = self.useFixture(it_fixtures.Uwsgi(config))
        driver = db.load_driver(config.conf())
        image = it_fixtures.new_image(driver)
        statuses = []
        for method, tag in [('PUT', 'a%2Fb'), ('PUT', 'caf%C3%A9'),
                            ('DELETE', 'caf%C3%A9'), ('DELETE', 'caf%C3%A9'),
                            ('PUT', '%F0%9F%98%80')]:
            conn = http.client.HTTPConnection(
                *server.url[len('http://'):].split(':'), timeout=10)
            conn.request(method, '/v2/images/%s/tags/%s' % (image, tag),
                         headers={'X-Auth-Token': 'u:p-owner:member,reader'})
            statuses.append(conn.getresponse().status)
            conn.close()
        self.assertEqual([204, 204, 204, 404, 400], statuses)
        self.assertEqual(['a/b'], driver.show_image(image)['tags'])


class TestRequestId(testtools.TestCase):
    """imagetags' request_id filter does what oslo.middleware's does."""

    def answers(self, middleware, headers, app_headers):
        seen = []

        def app(environ, start_response):
            seen.append({k: v for k, v in environ.items()
                         if k.startswith('openstack.')})
            start_response('404 Not Found', list(app_headers))
            return [b'body']
        resp = webob.Request.blank('/x', headers=headers).get_response(
            middleware.factory({})(app))
        rid = seen[0].pop('openstack.request_id')
        self.assertRegex(rid, oslo_request_id.ID_FORMAT)
        return (resp.status, resp.body, sorted(
            (k.lower(), '<id>' if v == rid else v)
            for k, v in resp.headerlist), seen[0])

    def test_a_new_id_has_oslo_contexts_form(self):
        """``req-`` and a random version 4 UUID, as oslo.context's
        ``generate_request_id``: every hex digit drawn, the version and
        variant bits set."""
        ids = {request_id.generate() for _ in range(2000)}
        self.assertEqual(2000, len(ids))
        for rid in ids:
            u = uuid.UUID(rid[len('req-'):])
            self.assertEqual(('req-%s' % u, 4, uuid.RFC_4122),
                             (rid, u.version, u.variant))
        self.assertEqual(set('89ab'), {rid[23] for rid in ids})
        for n in set(range(4, 40)) - {12, 17, 18, 22, 23, 27}:
            self.assertEqual(16, len({rid[n] for rid in ids}), n)

    def test_same_as_oslo_middleware(self):
        class Compat(request_id.RequestId):
            compat_headers = ['X-Compute-Request-Id']

        class OsloCompat(oslo_request_id.RequestId):
            compat_headers = ['X-Compute-Request-Id']

        glob = 'req-%s' % uuid.uuid4()
        cases = [
            ({}, [('Content-Type', 'text/plain')]),
            ({'X-Openstack-Request-Id': glob}, []),
            ({'X-Openstack-Request-Id': glob + 'x'}, []),
            ({'X-Openstack-Request-Id': 'abc'}, []),
            ({}, [('X-OpenStack-Request-ID', 'the app\'s')]),
        ]
        for headers, app_headers in cases:
            for ours, oslos in ((request_id.RequestId,
                                 oslo_request_id.RequestId),
                                (Compat, OsloCompat)):
                mine = self.answers(ours, headers, app_headers)
                self.assertEqual(self.answers(oslos, headers, app_headers),
                                 mine)
        # What those comparisons rest on.
        self.assertEqual(
            {'openstack.global_request_id': glob},
            self.answers(request_id.RequestId,
                         {'X-Openstack-Request-Id': glob}, [])[3])
        self.assertIn(('x-compute-request-id', '<id>'),
                      self.answers(Compat, {}, [])[2])
        self.assertIn(('x-openstack-request-id', "the app's"),
                      self.answers(request_id.RequestId, {}, [(
                          'X-OpenStack-Request-ID', "the app's")])[2])


class TestFactories(testtools.TestCase):
    def app(self, **defaults):
        database = self.useFixture(it_fixtures.Database('sqlite'))
        config = self.useFixture(it_fixtures.ConfigDir(it_fixtures.merge(
            database.options, {'DEFAULT': defaults})))
        app = deploy.app_factory({}, oslo_config_file=config.conf_file)
        app.driver.create_image('img', 'p1', 'private')
        return app

    def put(self, app, tag):
        return webob.Request.blank('/v2/images/img/tags/' + tag, method='PUT',
                                   headers=MEMBER).get_response(app)

    def test_two_differently_configured_apps_in_one_process(self):
        one, three = self.app(image_tag_quota=1), self.app(image_tag_quota=3)
        for tag, status in (('a', 204), ('b', 413)):
            self.assertEqual(status, self.put(one, tag).status_int)
        for tag in ('a', 'b', 'c'):
            self.assertEqual(204, self.put(three, tag).status_int)
        self.assertEqual(413, self.put(three, 'd').status_int)
        self.assertEqual(['a'], one.driver.show_image('img')['tags'])

    def test_filter_wraps_the_next_app(self):
        config = self.useFixture(it_fixtures.ConfigDir(
            {'imagetags': {'driver': 'memory'}}))
        make = deploy.filter_factory({}, oslo_config_file=config.conf_file)

        def backend(environ, start_response):
            start_response('200 OK', [])
            return [b'backend']
        app = make(backend)
        self.assertIs(backend, app.next_app)
        resp = webob.Request.blank('/v2/images/x').get_response(app)
        self.assertEqual(b'backend', resp.body)

    def test_unknown_driver_fails_at_load(self):
        config = self.useFixture(it_fixtures.ConfigDir(
            {'imagetags': {'driver': 'nosuch'}}))
        e = self.assertRaises(Exception, deploy.app_factory, {},
                              oslo_config_file=config.conf_file)
        self.assertIn('nosuch', str(e))

    def test_a_db_api_it_does_not_run_on_fails_at_load(self):
        # Each failed every request (500 or 503), or a PUT with no quota;
        # refused before anything is imported or connected.
        for url in ('mysql+mysqlconnector://u@127.0.0.1/db',
                    'mariadb+mariadbconnector://u@127.0.0.1/db',
                    'postgresql+pg8000://u@127.0.0.1/db',
                    'postgresql+psycopg://u@127.0.0.1/db',
                    'postgresql+asyncpg://u@127.0.0.1/db',
                    'sqlite+aiosqlite:///imagetags.sqlite'):
            config = self.useFixture(it_fixtures.ConfigDir(
                {'database': {'connection': url}}))
            e = self.assertRaises(ValueError, deploy.app_factory, {},
                                  oslo_config_file=config.conf_file)
            self.assertIn(url.split(':')[0].replace('mariadb+', 'mysql+')
                          + '://;', str(e))
            self.assertIn('postgresql+psycopg2://', str(e))
        # Tags are UTF-8.
        config = self.useFixture(it_fixtures.ConfigDir({'database': {
            'connection': 'mysql+pymysql://u@127.0.0.1/db?charset=latin1'}}))
        e = self.assertRaises(ValueError, deploy.app_factory, {},
                              oslo_config_file=config.conf_file)
        self.assertIn('charset=latin1 cannot carry every tag', str(e))
        # One empty database per connection: the schema is never there.
        for url in ('sqlite://', 'sqlite:///:memory:'):
            config = self.useFixture(it_fixtures.ConfigDir(
                {'database': {'connection': url}}))
            e = self.assertRaises(ValueError, deploy.app_factory, {},
                                  oslo_config_file=config.conf_file)
            self.assertIn('in-memory SQLite', str(e))

    def test_missing_config_file_fails_at_load(self):
        self.assertRaises(Exception, deploy.app_factory, {},
                          oslo_config_file='/nonexistent/imagetags.conf')

    def test_root_versions_and_healthcheck(self):
        database = self.useFixture(it_fixtures.Database('memory'))
        app = self.useFixture(it_fixtures.ConfigDir(database.options)
                              ).loadapp('noauth')
        for path, status in (('/', 300), ('/versions', 200)):
            resp = webob.Request.blank(path, base_url='http://h:1/p'
                                       ).get_response(app)
            self.assertEqual(status, resp.status_int)
            versions = resp.json['versions']
            self.assertEqual(('v2.18', 'CURRENT'),
                             (versions[0]['id'], versions[0]['status']))
            self.assertEqual('v2.0', versions[-1]['id'])
            self.assertEqual('http://h:1/p/v2/',
                             versions[0]['links'][0]['href'])
        resp = webob.Request.blank('/healthcheck').get_response(app)
        self.assertEqual(200, resp.status_int)
        # Behind a TLS proxy (when the operator enables proxy headers), the
        # version document links to the address the client used.
        proxied = self.useFixture(it_fixtures.ConfigDir(it_fixtures.merge(
            database.options, {'oslo_middleware': {
                'enable_proxy_headers_parsing': True}}))).loadapp('noauth')
        for app_, href in ((app, 'http://h:1/v2/'),
                           (proxied, 'https://api.example.org/image/v2/')):
            resp = webob.Request.blank('/versions', base_url='http://h:1',
                                       headers={'Forwarded': (
                                           'proto=https;'
                                           'host=api.example.org'),
                                           'X-Forwarded-Prefix': '/image'}
                                       ).get_response(app_)
            self.assertEqual(href, resp.json['versions'][0]['links'][0][
                'href'])
            self.assertTrue(resp.headers['X-Openstack-Request-Id'])
        # Everything else needs an identity, then is 404.
        self.assertEqual(401, webob.Request.blank('/v2/images').get_response(
            app).status_int)
        self.assertEqual(404, webob.Request.blank(
            '/v2/images', headers=MEMBER).get_response(app).status_int)


class TestGeneratedSamples(testtools.TestCase):
    def test_policy_sample_is_current(self):
        out = os.path.join(self.useFixture(it_fixtures.fixtures.TempDir()
                                           ).path, 'policy.yaml')
        run(os.path.join(BIN, 'oslopolicy-sample-generator'), '--namespace',
            'imagetags', '--output-file', out)
        sample = os.path.join(ETC, 'policy.yaml.sample')
        with open(out) as f, open(sample) as g:
            self.assertEqual(f.read(), g.read())

    def test_config_sample_documents_every_option(self):
        text = run(os.path.join(BIN, 'oslo-config-generator'), '--namespace',
                   'imagetags')
        with open(os.path.join(ETC, 'imagetags.conf.sample')) as f:
            sample = f.read()
        for group, opts in it_conf.list_opts():
            for opt in opts:
                self.assertIn('#%s =' % opt.name, text)
                self.assertIn('#%s =' % opt.name, sample)
                self.assertTrue(opt.help)
        self.assertIn('[imagetags]', sample)
        self.assertIn('[database]', sample)
        self.assertIn('[keystone_authtoken]', sample)

    def test_oslopolicy_generator_and_checker(self):
        tmp = self.useFixture(it_fixtures.fixtures.TempDir()).path

        def write(name, data):
            with open(os.path.join(tmp, name), 'w') as f:
                f.write(data if isinstance(data, str) else json.dumps(data))
            return os.path.join(tmp, name)
        effective = run(os.path.join(BIN, 'oslopolicy-policy-generator'),
                        '--namespace', 'imagetags')
        self.assertIn('"add_image_tag": "rule:modify_image"', effective)
        access = write('access.json', {'token': {
            'user': {'id': 'u1'}, 'project': {'id': 'p1'},
            'roles': [{'name': 'member'}, {'name': 'reader'}]}})
        for project, verdict in (('p1', 'passed'), ('p2', 'failed')):
            out = run(os.path.join(BIN, 'oslopolicy-checker'), '--policy',
                      write('policy.yaml', effective), '--access', access,
                      '--rule', 'delete_image_tag', '--target',
                      write('target.json', {'project_id': project}))
            self.assertEqual('%s: delete_image_tag' % verdict, out.strip())


class TestCommands(testtools.TestCase):
    """The README's quick start, as a newcomer runs it."""

    def setUp(self):
        super().setUp()
        self.state = self.useFixture(it_fixtures.fixtures.TempDir()).path
        self.env = dict(os.environ, OS_DEFAULT__STATE_PATH=self.state)

    def manage(self, *args):
        return run(os.path.join(BIN, 'imagetags-manage'), *args,
                   env=self.env).strip()

    def test_dev_server_on_embedded_sqlite(self):
        image = '1bea47ed-f6a9-463b-b423-14b9cca9ad27'
        port = it_fixtures.free_port()
        server = subprocess.Popen(
            [os.path.join(BIN, 'imagetags-api'), '--port', str(port)],
            cwd=it_fixtures.ROOT, env=self.env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        self.addCleanup(server.wait)
        self.addCleanup(server.terminate)
        self.useFixture(fixtures.Timeout(60, gentle=True))
        self.assertIn('sqlite:///%s/imagetags.sqlite' % self.state,
                      server.stdout.readline())
        self.assertEqual(image, self.manage(
            'image', 'create', '--owner', 'demo', '--visibility', 'private',
            '--id', image))
        statuses = []
        for method in ('PUT', 'DELETE', 'DELETE'):
            conn = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
            conn.request(method, '/v2/images/%s/tags/demo' % image, headers={
                'X-Auth-Token': 'demo-user:demo:member,reader'})
            resp = conn.getresponse()
            statuses.append((resp.status, resp.reason))
            conn.close()
        self.assertEqual([(204, 'No Content'), (204, 'No Content'),
                          (404, 'Not Found')], statuses)
        self.assertEqual([], json.loads(self.manage('image', 'show',
                                                    image))['tags'])

    def test_manage(self):
        self.assertEqual('0003', self.manage('db', 'sync'))
        self.assertEqual('0003', self.manage('db', 'version'))
        image = self.manage('image', 'create', '--owner', 'p1',
                            '--visibility', 'shared', '--member', 'p2',
                            '--member', 'p3:pending', '--name', 'n')
        shown = json.loads(self.manage('image', 'show', image))
        self.assertEqual(('p1', 'shared', 'n', []), (
            shown['owner'], shown['visibility'], shown['name'],
            shown['tags']))
        e = self.assertRaises(subprocess.CalledProcessError, self.manage,
                              'image', 'create', '--owner', 'p1', '--id',
                              image)
        self.assertEqual('Image %s exists\n' % image, e.stderr)
        e = self.assertRaises(subprocess.CalledProcessError, self.manage,
                              'image', 'create', '--owner', 'p1', '--id',
                              'x' * 37)
        self.assertIn('1 to 36 characters', e.stderr)
        self.manage('image', 'delete', image)
        e = self.assertRaises(subprocess.CalledProcessError, self.manage,
                              'image', 'show', image)
        self.assertIn('No image', e.stderr)

    def test_manage_says_what_is_wrong_in_one_line(self):
        conf = os.path.join(self.state, 'imagetags.conf')
        for connection, expected in (
                ('postgresql+psycopg2://u@127.0.0.1:%d/db' % (
                    it_fixtures.free_port()), 'Connection refused'),
                ('sqlite:///%s/imagetags.sqlite' % conf, 'File exists'),
                ('sqlite:///' + self.state, 'unable to open database file'),
                ('postgresql+pg8000://u@127.0.0.1/db', 'does not run on')):
            with open(conf, 'w') as f:
                f.write('[database]\nconnection = %s\n' % connection)
            e = self.assertRaises(subprocess.CalledProcessError, self.manage,
                                  '--config-file', conf, 'db', 'sync')
            self.assertEqual(1, len(e.stderr.splitlines()), e.stderr)
            self.assertIn(expected, e.stderr)
        e = self.assertRaises(subprocess.CalledProcessError, self.manage,
                              '--config-file', conf + '.missing', 'db',
                              'version')
        self.assertEqual(1, len(e.stderr.splitlines()), e.stderr)

    def test_manage_leaves_other_databases_alone(self):
        database = self.useFixture(it_fixtures.Database('sqlite'))
        conf = os.path.join(self.state, 'glance.conf')
        with open(conf, 'w') as f:
            f.write('[database]\nconnection = %s\n' % database.url)
        engine = sqlalchemy.create_engine(database.url)
        with engine.begin() as c:
            c.execute(sqlalchemy.text('DROP TABLE imagetags_alembic_version'))
        engine.dispose()
        for args in (('db', 'sync'), ('image', 'create', '--owner', 'p')):
            e = self.assertRaises(subprocess.CalledProcessError, self.manage,
                                  '--config-file', conf, *args)
            self.assertIn('imagetags', e.stderr)
