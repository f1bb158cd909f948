"""The soak (imagetags.tests.soak), a few seconds per backend, so CI runs it.

``IMAGETAGS_TEST_SOAK_SECONDS`` sets the duration per backend (default 4);
``tox -e soak`` runs the long version.
"""
import os

import testtools
from testtools import content

from imagetags.tests import soak

SECONDS = float(os.environ.get('IMAGETAGS_TEST_SOAK_SECONDS', 4))


class Soak:
    backend = None
    server_threads = 1

    def test_soak(self):
        lines = []
        summary = soak.run(self.backend, SECONDS, out=lines.append,
                           server_threads=self.server_threads)
        self.addDetail('soak', content.text_content('\n'.join(lines)))
        self.assertEqual(0, summary['5xx'], 'answers 5xx')
        self.assertEqual(0, summary['no answer'], 'requests without answer')
        self.assertGreater(summary['operations'], 0)
        self.assertEqual([], summary['problems'])


class TestSQLite(Soak, testtools.TestCase):
    backend = 'sqlite'


class TestMySQL(Soak, testtools.TestCase):
    backend = 'mysql'


class TestMySQLThreaded(Soak, testtools.TestCase):
    # Threads of one worker share its driver, its kept connection and pool.
    backend = 'mysql'
    server_threads = 8


class TestPostgreSQL(Soak, testtools.TestCase):
    backend = 'postgresql'


class TestGalera(Soak, testtools.TestCase):
    backend = 'galera'
