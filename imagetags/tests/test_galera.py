"""Writers on every node of a Galera cluster (tags-api.md 3.1 and 5).

A MariaDB Galera cluster of two nodes on 127.0.0.1, made for the class
(``it_fixtures.Galera``; skipped, saying why, where MariaDB's server, the
galera-4 library or rsync is missing), and a driver on each node. Galera
certifies a transaction against the other nodes' by the rows it changed; a
row lock is not replicated. Writes of one image through both nodes at once
must still leave no duplicate live tag and never pass the quota, on
MariaDB's changes and on MySQL's. A node that refuses queries answers 503,
and serves again once it takes them. (``tox -e soak`` and its short version in
``test_soak`` run the whole pipeline on such a cluster.)
"""
import collections
import threading
import uuid

from oslo_context import context
import pymysql
import sqlalchemy as sa
import testtools

from imagetags import db
from imagetags.tests import fixtures as it_fixtures

PROJECT = 'P'
ADMIN = context.RequestContext(project_id=PROJECT, is_admin=True,
                               overwrite=False)
TAGS = ['t%d' % n for n in range(6)]
QUOTA = 4
IMAGES = 40
THREADS_PER_NODE = 3


def allow(image):
    """The policy check: the caller may change any image."""


class GaleraTest(testtools.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cluster = None
        try:
            cluster = it_fixtures.Galera()
        except testtools.TestCase.skipException as e:
            cls.skip_reason = str(e)
            return
        cluster.setUp()     # cleans itself up if it fails
        cls.cluster = cluster

    @classmethod
    def tearDownClass(cls):
        if cls.cluster is not None:
            cls.cluster.cleanUp()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        if self.cluster is None:
            self.skipTest(self.skip_reason)
        self.drivers = []
        for options in self.cluster.options:
            driver = db.load_driver(self.useFixture(
                it_fixtures.ConfigDir(options)).conf())
            self.addCleanup(driver.engine.dispose)
            self.drivers.append(driver)

    def collide(self):
        """On fresh images, threads on both nodes PUT every tag, each in
        its own order, all at once, then DELETE some and PUT them again.
        Returns the outcomes by kind, and a problem per image whose live
        tags hold a duplicate or more than the quota."""
        outcomes, problems = collections.Counter(), []
        threads = THREADS_PER_NODE * len(self.drivers)
        for _ in range(IMAGES):
            image = str(uuid.uuid4())
            self.drivers[0].create_image(image, PROJECT)
            for driver in self.drivers:
                # Every node has the image before the writers start.
                self.assertEqual([1], self.causal_read(
                    driver, 'SELECT 1 FROM images WHERE id = :image', image))
            start = threading.Barrier(threads)

            def work(n):
                driver = self.drivers[n % len(self.drivers)]
                order = TAGS[n:] + TAGS[:n]
                start.wait(30)
                for change, tag in ([('add', t) for t in order] +
                                    [('delete', t) for t in order[:2]] +
                                    [('add', t) for t in order[:2]]):
                    try:
                        if change == 'add':
                            driver.add_tag(ADMIN, image, tag, QUOTA, allow)
                        else:
                            driver.delete_tag(ADMIN, image, tag, allow)
                        outcomes[change] += 1
                    except (db.TagNotFound, db.TagLimitExceeded) as e:
                        outcomes[type(e).__name__] += 1
                    except Exception as e:  # counted: the test fails
                        outcomes['%s: %s' % (type(e).__name__, e)] += 1
            workers = [threading.Thread(target=work, args=(n,))
                       for n in range(threads)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            live = self.causal_read(
                self.drivers[0], 'SELECT value FROM image_tags WHERE '
                'image_id = :image AND deleted = 0', image)
            counts = collections.Counter(live)
            if len(live) > QUOTA or max(counts.values(), default=0) > 1:
                problems.append('%s: %s' % (image, sorted(live)))
        return outcomes, problems

    @staticmethod
    def causal_read(driver, sql, image):
        """The rows' first values, read after the node has applied every
        change committed on the others before (wsrep_sync_wait; unset
        after, as the connection goes back to the driver's pool)."""
        with driver.engine.connect() as conn:
            conn.exec_driver_sql('SET SESSION wsrep_sync_wait = 1')
            rows = [row[0] for row in conn.execute(sa.text(sql),
                                                   {'image': image})]
            conn.exec_driver_sql('SET SESSION wsrep_sync_wait = 0')
        return rows

    def check(self):
        outcomes, problems = self.collide()
        self.assertEqual([], problems)
        self.assertEqual(set(), set(outcomes) - {
            'add', 'delete', 'TagNotFound', 'TagLimitExceeded'}, outcomes)

    def test_writes_through_both_nodes_mariadb(self):
        self.check()
        self.assertEqual([(True, True)] * 2,
                         [driver.server for driver in self.drivers])

    def test_writes_through_both_nodes_mysql(self):
        # MySQL's changes (no compound statements), here on MariaDB.
        for driver in self.drivers:
            driver.use_server(mariadb=False, galera=True)
        self.check()

    def test_a_node_refusing_queries_is_unavailable(self):
        # wsrep_reject_queries (maintenance; a node that lost its cluster's
        # quorum answers the same error 1047): 503, then served again.
        driver = self.drivers[0]
        image = str(uuid.uuid4())
        driver.create_image(image, PROJECT)
        url = sa.engine.make_url(self.cluster.urls[0])

        def reject(how):
            # On a DB-API connection: SQLAlchemy's would end with a
            # ROLLBACK, which the node refuses.
            conn = pymysql.connect(host=url.host, port=url.port,
                                   user=url.username)
            try:
                conn.cursor().execute('SET GLOBAL wsrep_reject_queries = '
                                      + how)
            finally:
                conn.close()
        self.assertTrue(driver.add_tag(ADMIN, image, 'a', QUOTA, allow))
        reject('ALL')
        self.addCleanup(reject, 'NONE')
        self.assertRaises(db.Unavailable, driver.add_tag, ADMIN, image, 'b',
                          QUOTA, allow)
        reject('NONE')
        self.assertEqual(['a', 'b'], driver.add_tag(
            ADMIN, image, 'b', QUOTA, allow)['tags'])
