"""Where the in-process time goes: ``python -m imagetags.tests.bench profile``.

    python -m imagetags.tests.bench profile [DRIVER] [-n N] [--cpu]
                                            [--top K] [--dump FILE] [--bare]
                                            [--cold]

Loads the ``noauth`` pipeline on DRIVER (memory, sqlite, mysql, postgresql;
default sqlite) as the in-process bench does, warms it up, then profiles N
rounds of the four request kinds with cProfile (wall-clock timer, so SQL
includes the database's waits; ``--cpu`` times CPU instead, at a much higher
profiling overhead). Prints the self time by component (oslo.policy,
SQLAlchemy, webob, ...), then the top functions by cumulative and by self
time. ``--dump`` writes the raw pstats file (for snakeviz, gprof2dot...).

``--bare`` runs the same requests without cProfile, for a sampling profiler
(its CPU time per request is printed), e.g. with py-spy (which leaves out
the time spent waiting for the database)::

    py-spy record -r 1000 -f raw -o stacks.txt -- \
        python -m imagetags.tests.bench profile sqlite -n 3000 --bare

``--cold`` (no cProfile) times the requests' CPU three ways: back to back;
each after a round trip to another process (a context switch, as a worker
has between two requests); and each after that and 8 MB written (the
caches gunicorn's and the kernel's work leave). The last is close to what a
busy gunicorn worker spends in the app: on a 2-core machine, memory driver,
~45, 75-130 and 95-145 us, where a timer around the app in a worker read
~150. A request that waits for a database server is switched out anyway.
"""
import argparse
import cProfile
import collections
import io
import os
import pstats
import shutil
import socket
import tempfile
import time

from imagetags.tests.bench import backends as bk
from imagetags.tests.bench import inproc
from imagetags.tests.bench import settings as bench_settings

# First match wins: (component, path fragment).
COMPONENTS = [
    ('oslo.policy', '/oslo_policy/'),
    ('oslo.config', '/oslo_config/'),
    ('oslo.context', '/oslo_context/'),
    ('oslo.middleware', '/oslo_middleware/'),
    ('oslo.db', '/oslo_db/'),
    ('oslo.log/utils/i18n', '/oslo_'),
    ('SQLAlchemy', '/sqlalchemy/'),
    ('DB driver (pymysql)', '/pymysql/'),
    ('DB driver (psycopg2)', '/psycopg2/'),
    ('DB driver (sqlite3)', '/sqlite3/'),
    ('routes', '/routes/'),
    ('webob', '/webob/'),
    ('paste', '/paste/'),
    ('imagetags', '/imagetags/'),
    ('inspect (stdlib)', '/inspect.py'),
    ('uuid/random (stdlib)', '/uuid.py'),
    ('logging (stdlib)', '/logging/'),
    ('posixpath/genericpath/os', 'path.py'),
]


def component(filename, funcname):
    for name, fragment in COMPONENTS:
        if fragment in filename:
            return name
    if filename == '~':
        # C functions: attribute DB driver calls by name where we can.
        if 'sqlite3' in funcname:
            return 'DB driver (sqlite3)'
        if 'psycopg2' in funcname or 'cursor' in funcname:
            return 'C builtins (DB cursor)'
        return 'C builtins'
    return 'other Python'


def breakdown(stats):
    totals = collections.Counter()
    for (filename, _, funcname), (_, _, tt, _, _) in stats.stats.items():
        totals[component(filename, funcname)] += tt
    return totals


def cold(app, images, n, driver):
    """Print the app's mean thread CPU per request, warm and cold."""
    ours, theirs = socket.socketpair()
    child = os.fork()
    if child == 0:      # the other process: echo each byte back
        ours.close()
        while theirs.recv(1):
            theirs.send(b'x')
        os._exit(0)
    theirs.close()
    scratch = bytearray(8 << 20)
    lines = b'x' * len(range(0, len(scratch), 64))

    def switch():
        ours.send(b'x')
        ours.recv(1)

    def both():
        switch()
        scratch[::64] = lines

    out = []
    try:
        for prefix, between in (('a', None), ('b', switch), ('c', both)):
            total = 0
            steps = inproc.plan(images, n, prefix)
            for _, environ, _ in steps:
                if between is not None:
                    between()
                c = time.thread_time_ns()
                for _ in app(environ, lambda s, h, e=None: None):
                    pass
                total += time.thread_time_ns() - c
            out.append(total / len(steps) / 1000)
    finally:
        ours.close()
        os.waitpid(child, 0)
    print('%s driver, %d requests, us CPU per request: %.1f back to back, '
          '%.1f after a switch to another process, %.1f after that and 8 MB '
          'written' % (driver, len(steps), *out))


def main(argv):
    parser = argparse.ArgumentParser(prog='python -m imagetags.tests.bench '
                                     'profile', description=__doc__)
    parser.add_argument('driver', nargs='?', default='sqlite',
                        choices=bench_settings.ALL_DRIVERS)
    parser.add_argument('-n', type=int, default=500,
                        help='rounds of the four kinds (default 500)')
    parser.add_argument('--cpu', action='store_true',
                        help='CPU timer (high overhead) instead of wall')
    parser.add_argument('--bare', action='store_true',
                        help='no cProfile: for a sampling profiler')
    parser.add_argument('--cold', action='store_true',
                        help='CPU per request, warm and cold (no cProfile)')
    parser.add_argument('--top', type=int, default=30)
    parser.add_argument('--dump', default=None)
    args = parser.parse_args(argv)

    s = bench_settings.load()
    workdir = tempfile.mkdtemp(prefix='imagetags-profile-')
    backend = bk.Backend(args.driver, s, workdir)
    try:
        if not backend.prepare():
            print('SKIP', backend.skip)
            return 1
        app, tags_app, images = inproc.load(backend)
        inproc.execute(app, inproc.plan(images, 100, 'w'))
        steps = inproc.plan(images, args.n)
        if args.cold:
            cold(app, images, args.n, args.driver)
            return 0
        prof = cProfile.Profile(time.process_time if args.cpu
                                else time.perf_counter)
        t0 = time.process_time()
        if not args.bare:
            prof.enable()
        inproc.execute(app, steps)
        prof.disable()
        cpu = time.process_time() - t0
        if backend.is_sql:
            tags_app.driver.engine.dispose()
    finally:
        backend.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)

    if args.bare:
        print('%s driver, %d requests: %.1f us CPU/request' % (
            args.driver, len(steps), 1e6 * cpu / len(steps)))
        return 0
    if args.dump:
        prof.dump_stats(args.dump)
    stats = pstats.Stats(prof)
    total = sum(tt for (_, _, tt, _, _) in stats.stats.values())
    print('%s driver, %d requests (%d rounds of PUT, PUT-present, DELETE, '
          'DELETE-absent), %s timer: %.1f us/request under the profiler, '
          '%.1f us CPU/request' % (args.driver, len(steps), args.n,
                                   'CPU' if args.cpu else 'wall',
                                   1e6 * total / len(steps),
                                   1e6 * cpu / len(steps)))
    print('\nSelf time by component:')
    for name, tt in breakdown(stats).most_common():
        print('  %-26s %5.1f%%  %7.1f us/request'
              % (name, 100 * tt / total, 1e6 * tt / len(steps)))
    for key in ('cumulative', 'tottime'):
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats(key).print_stats(args.top)
        text = out.getvalue()
        print('\nTop %d by %s:\n%s' % (
            args.top, key, text[text.index('   ncalls'):]))
    return 0
