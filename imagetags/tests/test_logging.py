"""Request ids on log lines (oslo.log's ContextFormatter reads oslo.context's
thread-local current context, which imagetags' context sets per request).
"""
import http.client
import io
import logging
import os
import urllib.parse
import uuid

import fixtures
from keystonemiddleware import fixture as ksm_fixture
from oslo_config import cfg
from oslo_log import formatters
from oslo_log import log
import testtools
from testtools import content
import webob

from imagetags.tests import fixtures as it_fixtures


class WSGILogTest(testtools.TestCase):
    """``imagetags.wsgi`` under gunicorn (one sync worker, the ``noauth``
    pipeline) logging to a file; a database without tables makes every tag
    call log an error (and answer 500) inside the request."""

    def test_request_id_on_log_lines(self):
        database = self.useFixture(it_fixtures.Database('sqlite',
                                                        schema=False))
        log_file = os.path.join(self.useFixture(fixtures.TempDir()).path,
                                'imagetags.log')
        config_dir = self.useFixture(it_fixtures.ConfigDir(it_fixtures.merge(
            database.options, {'DEFAULT': {'log_file': log_file}})))
        url = urllib.parse.urlsplit(self.useFixture(it_fixtures.Gunicorn(
            config_dir, 'noauth', workers=1)).url)
        client_id = 'req-' + str(uuid.uuid4())
        ids = []
        for headers in ({}, {'X-Openstack-Request-Id': client_id}, {}):
            conn = http.client.HTTPConnection(url.hostname, url.port,
                                              timeout=30)
            self.addCleanup(conn.close)
            conn.request('PUT', '/v2/images/img-%d/tags/t' % len(ids),
                         headers=dict(headers, **{
                             'X-Auth-Token': 'u-1:p-1:member,reader'}))
            resp = conn.getresponse()
            resp.read()
            self.assertEqual(500, resp.status)
            ids.append(resp.getheader('X-Openstack-Request-Id'))
        self.assertEqual(client_id, ids[1])
        with open(log_file) as f:
            text = f.read()
        self.addDetail('log', content.text_content(text))
        lines = [line for line in text.splitlines()
                 if 'Unexpected error in PUT' in line]
        self.assertEqual(3, len(lines))
        for n, (line, rid) in enumerate(zip(lines, ids)):
            self.assertIn('/v2/images/img-%d/tags/t' % n, line)
            # The context part: "[<global id> <request id> <user> <project>"
            self.assertIn(' %s u-1 p-1 ' % rid, line)
            self.assertEqual([rid], [i for i in ids if i in line])


class KeystoneLogTest(testtools.TestCase):
    """keystonemiddleware logs before imagetags makes the request's context:
    those lines must not carry an earlier request's id and identity (one
    thread serves many requests)."""

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.FakeLogger(level=logging.INFO))
        self.tokens = self.useFixture(ksm_fixture.AuthTokenFixture())
        database = self.useFixture(it_fixtures.Database('sqlite'))
        self.app = self.useFixture(it_fixtures.ConfigDir(it_fixtures.merge(
            database.options, {'keystone_authtoken': {
                'www_authenticate_uri': 'http://127.0.0.1:5000/v3'}}))
        ).loadapp('main')
        conf = cfg.ConfigOpts()
        log.register_options(conf)
        conf([])
        conf.set_override('logging_context_format_string',
                          '[%(request_id)s %(user_identity)s] %(message)s')
        conf.set_override('logging_default_format_string', '[-] %(message)s')
        conf.set_override('logging_debug_format_suffix', '')
        self.stream = io.StringIO()
        handler = logging.StreamHandler(self.stream)
        handler.setFormatter(formatters.ContextFormatter(config=conf))
        logger = logging.getLogger('keystonemiddleware.auth_token')
        self.addCleanup(logger.setLevel, logger.level)
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
        self.addCleanup(logger.removeHandler, handler)

    def put(self, token):
        self.stream.seek(0)
        self.stream.truncate()
        resp = webob.Request.blank('/v2/images/x/tags/t', method='PUT',
                                   headers={'X-Auth-Token': token}
                                   ).get_response(self.app)
        return resp.headers['X-Openstack-Request-Id'], self.stream.getvalue()

    def test_no_stale_request_id(self):
        token = uuid.uuid4().hex
        self.tokens.add_token_data(token_id=token, project_id='p-1',
                                   user_id='u-1', role_list=['member'])
        first, _ = self.put(token)
        second, text = self.put('bad')
        self.addDetail('log', content.text_content(text))
        line = [line for line in text.splitlines()
                if 'Invalid user token' in line][0]
        self.assertNotIn(first, line)
        self.assertNotIn('u-1', line)
        self.assertIn(second, line)
