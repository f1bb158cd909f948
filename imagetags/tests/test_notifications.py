"""Glance's image.update notification through a real RabbitMQ.

RabbitMQ at ``IMAGETAGS_TEST_RABBIT_URL`` (default
``rabbit://guest:guest@127.0.0.1:5672/``); skipped, saying why, where none
answers. Each test publishes on a topic of its own and reads its queue.
"""
import datetime
import uuid

import testtools
import webob

from imagetags.tests import fixtures as it_fixtures

OWNER = {'X-Auth-Token': 'u:p-owner:member,reader'}
# Glance's format_image_notification.
KEYS = {'id', 'name', 'status', 'created_at', 'updated_at', 'min_disk',
        'min_ram', 'protected', 'checksum', 'owner', 'disk_format',
        'container_format', 'size', 'virtual_size', 'is_public',
        'visibility', 'properties', 'tags', 'deleted', 'deleted_at'}


class TestNotifications(testtools.TestCase):
    backend = 'sqlite'

    def setUp(self):
        super().setUp()
        missing = it_fixtures.rabbit_missing()
        if missing:
            self.skipTest(missing)
        self.topic = 'imagetags_test_%s' % uuid.uuid4().hex[:12]
        self.addCleanup(it_fixtures.drop_queue, self.topic + '.info')

    def app(self, **options):
        """The noauth pipeline, notifications on this topic."""
        database = self.useFixture(it_fixtures.Database(self.backend))
        messaging = dict({'driver': 'messagingv2', 'topics': self.topic,
                          'transport_url': it_fixtures.RABBIT_URL},
                         **options.pop('messaging', {}))
        config = self.useFixture(it_fixtures.ConfigDir(it_fixtures.merge(
            database.options, {'oslo_messaging_notifications': messaging},
            {'DEFAULT': options})))
        app = config.loadapp('noauth')
        return app, it_fixtures.tags_app(app).driver

    def messages(self, expected):
        return it_fixtures.notifications(self.topic + '.info', expected)

    def call(self, app, method, image, tag):
        return webob.Request.blank(
            '/v2/images/%s/tags/%s' % (image, tag), method=method,
            headers=OWNER).get_response(app).status_int

    def test_each_change_sends_glances_image_update(self):
        app, driver = self.app()
        image = it_fixtures.new_image(driver)
        for method, tag, status in [('PUT', 'a', 204), ('PUT', 'a', 204),
                                    ('PUT', 'b', 204), ('DELETE', 'a', 204),
                                    ('DELETE', 'a', 404)]:
            self.assertEqual(status, self.call(app, method, image, tag))
        sent = self.messages(3)
        # The no-op PUT and the 404 send nothing (Glance: the no-op too).
        self.assertEqual([['a'], ['a', 'b'], ['b']],
                         [sorted(m['payload']['tags']) for m in sent])
        for message in sent:
            self.assertEqual(('image.update', 'INFO', 'image.localhost'), (
                message['event_type'], message['priority'],
                message['publisher_id']))
            payload = message['payload']
            self.assertEqual(KEYS, set(payload))
            self.assertEqual(
                (image, 'p-owner', 'private', False, {}, False, None),
                (payload['id'], payload['owner'], payload['visibility'],
                 payload['is_public'], payload['properties'],
                 payload['deleted'], payload['deleted_at']))
        # updated_at: what the last change wrote, as oslo.utils' isotime.
        updated = driver.show_image(image)['updated_at']
        self.assertEqual(updated.strftime('%Y-%m-%dT%H:%M:%SZ'),
                         sent[-1]['payload']['updated_at'])
        self.assertLessEqual(datetime.datetime.strptime(
            sent[0]['payload']['created_at'], '%Y-%m-%dT%H:%M:%SZ'),
            updated)     # (MySQL keeps whole seconds)

    def test_disabled_or_no_driver_sends_nothing(self):
        for options in ({'disabled_notifications': 'image.update'},
                        {'disabled_notifications': 'task,image'},
                        {'messaging': {'driver': 'noop'}}):
            app, driver = self.app(**options)
            self.assertIsNone(it_fixtures.tags_app(app).notify, options)
            image = it_fixtures.new_image(driver)
            self.assertEqual(204, self.call(app, 'PUT', image, 't'))
        self.assertEqual([], self.messages(0))

    def test_a_notification_that_fails_leaves_the_change_made(self):
        # A broker that is down: the change is committed, the answer 204,
        # the failure logged.
        app, driver = self.app(messaging={
            'transport_url': 'rabbit://guest:guest@127.0.0.1:%d/' % (
                it_fixtures.free_port()), 'retry': 0})
        image = it_fixtures.new_image(driver)
        self.assertEqual(204, self.call(app, 'PUT', image, 't'))
        self.assertEqual(['t'], driver.show_image(image)['tags'])


class TestNotificationsMySQL(TestNotifications):
    backend = 'mysql'


class TestNotificationsPostgreSQL(TestNotifications):
    backend = 'postgresql'
