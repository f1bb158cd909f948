"""Soak: concurrent PUTs and DELETEs of colliding tags, checked afterwards.

    python -m imagetags.tests.soak [--seconds N] [--backends sqlite,mysql,...]

(``tox -e soak``; ``SOAK_SECONDS`` sets the duration per backend, 60 by
default.) For each backend: a fresh database, gunicorn with 4 sync workers
serving the noauth pipeline (quota unlimited), a few images, then several
client *processes* of a few threads each, every thread looping until the
time is up: pick an image, a tag and PUT or DELETE at random, one new
``http.client`` connection per request, and record (start, end, status) of
every request with a system-wide monotonic clock. ``--server-threads N``
gives each worker N threads (gunicorn's gthread worker): requests of one
process share its driver and its connections. At the end the final tags
of every image are read from the database and checked against the log.

The ``galera`` backend is a MariaDB Galera cluster of two nodes made for
the run (``imagetags.tests.fixtures.Galera``), each node with a gunicorn of
its own (half the workers), and every request goes to one of them at
random: writers on every node of one image at once. Its servers set
``[database] mysql_wsrep_sync_wait = 1``, as README tells operators to do
there, so that a read sees what another node has committed.

What is checked, per (image, tag) (tags-api.md 3.1: each change is atomic and
serialised against the other writers of the image):

* **Owned tags, exact.** Every thread has tags of its own that no other
  thread touches, so their requests never overlap and the server sees them in
  the thread's order. Each answer is then predictable: PUT -> 204 always,
  DELETE -> 204 if the tag is there, else 404; and the final presence is that
  of the last answer. Other threads write other tags of the same images at
  the same time, so a lost update (a stale tag set written back, as Glance
  does: behaviour section 8) shows as a wrong answer or a wrong final set.
* **Shared tags, linearizable.** A small alphabet (``a``, ``A``, ``é``,
  ``x y``; case variants collide on MySQL's default collation) that every
  thread writes, so requests on one (image, tag) overlap. The server's order
  is unknown, but each request must take effect at one instant between its
  start and its end. The check searches for such an order (Wing & Gong's
  algorithm, memoised on (requests done, present?)) in which every answer is
  right (PUT 204 makes the tag present; DELETE 204 needs it present and
  removes it; DELETE 404 needs it absent) and which ends with the presence
  read at the end. It fails on a lost or resurrected update, on two 204
  DELETEs without a PUT in between, and on a 404 DELETE while the tag was
  there for the whole request. A quick necessary condition is checked
  first: 204 DELETEs + final presence <= 204 PUTs (every removal, and the
  final presence, needs an insertion before it, and only a 204 PUT inserts).
* No duplicate live rows, no tag outside the alphabet, and no 5xx at all (a
  request that got a 5xx or no answer is taken as "may or may not have
  happened" by the checks, and is itself a failure).

Also reported: operations by method and status, latency, the driver's
retries (oslo.db logs "Performing DB retry" at debug level; the server logs
at debug level to a file for that) and "busy" warnings, and 503s.
"""
import argparse
import collections
import http.client
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import uuid

# Only the standard library at the top: the client processes run this module
# too, so the server side's imports (SQLAlchemy, oslo.*, fixtures) are made
# inside run().

PROJECT = 'P'
HEADERS = {'X-Identity-Status': 'Confirmed', 'X-Roles': 'member,reader',
           'X-Project-Id': PROJECT, 'X-User-Id': 'U'}
SHARED_TAGS = ('a', 'A', '\u00e9', 'x y')
OWNED_PER_THREAD = 2
BACKENDS = ('sqlite', 'mysql', 'postgresql', 'galera')
RETRY_MARK = 'Performing DB retry'
BUSY_MARKS = ('Database unavailable or busy', 'Database busy past the retries')
SEARCH_BUDGET = 500000


def owned_tags(client, thread):
    return ['o%d.%d.%d' % (client, thread, k) for k in range(OWNED_PER_THREAD)]


# --- clients (separate processes) ---------------------------------------

def client(spec):
    """One client process: ``threads`` threads until ``seconds`` are up.

    ``spec``: a dict with ``client`` (its number), ``threads``, ``urls``
    (the servers: each request goes to one at random), ``images`` (ids),
    ``seconds``, ``seed`` and ``out``. Says ``ready`` on stdout and starts
    on ``go`` from stdin, so that every client has started before the clock
    does. Writes one JSON line per request to ``out``:
    [client, thread, seq, image index, tag, method, status, start, end].
    """
    number, images = spec['client'], spec['images']
    netlocs = [urllib.parse.urlsplit(url).netloc for url in spec['urls']]
    records = [[] for _ in range(spec['threads'])]
    print('ready', flush=True)
    if sys.stdin.readline().strip() != 'go':
        return 1
    stop = time.monotonic() + spec['seconds']

    def work(thread):
        rng = random.Random('%s-%d-%d' % (spec['seed'], number, thread))
        own = owned_tags(number, thread)
        log = records[thread]
        seq = 0
        while time.monotonic() < stop:
            image = rng.randrange(len(images))
            tag = rng.choice(own if rng.random() < 0.5 else SHARED_TAGS)
            method = rng.choice(('PUT', 'DELETE'))
            path = '/v2/images/%s/tags/%s' % (images[image],
                                              urllib.parse.quote(tag))
            netloc = rng.choice(netlocs)
            start = time.monotonic()
            conn = http.client.HTTPConnection(netloc, timeout=120)
            try:
                conn.request(method, path, headers=HEADERS)
                response = conn.getresponse()
                response.read()
                status = response.status
            except Exception:
                status = None
            finally:
                conn.close()
            log.append([number, thread, seq, image, tag, method, status,
                        start, time.monotonic()])
            seq += 1

    workers = [threading.Thread(target=work, args=(n,))
               for n in range(spec['threads'])]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    with open(spec['out'], 'w') as f:
        for log in records:
            for record in log:
                f.write(json.dumps(record) + '\n')
    return 0


def run_clients(urls, images, seconds, clients, threads, seed, workdir):
    """Run the client processes; (all their records, seconds taken)."""
    procs = []
    try:
        for n in range(clients):
            spec = {'client': n, 'threads': threads, 'urls': urls,
                    'images': images, 'seconds': seconds, 'seed': seed,
                    'out': os.path.join(workdir, 'client-%d.jsonl' % n)}
            procs.append((spec, subprocess.Popen(
                [sys.executable, '-m', 'imagetags.tests.soak', '--client',
                 json.dumps(spec)], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, text=True)))
        for spec, proc in procs:
            if proc.stdout.readline().strip() != 'ready':
                raise RuntimeError('client process %d did not start: exit '
                                   'status %s' % (spec['client'], proc.wait()))
        began = time.monotonic()
        for spec, proc in procs:
            proc.stdin.write('go\n')
            proc.stdin.close()
        records = []
        for spec, proc in procs:
            status = proc.wait(seconds + 300)
            if status != 0:
                raise RuntimeError('client process %d exited with %s'
                                   % (spec['client'], status))
            with open(spec['out']) as f:
                records.extend(json.loads(line) for line in f)
        return records, time.monotonic() - began
    finally:
        for spec, proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                if not pipe.closed:
                    pipe.close()


# --- the checks ---------------------------------------------------------

class Op:
    __slots__ = ('method', 'status', 'start', 'end', 'known')

    def __init__(self, method, status, start, end):
        self.method = method
        self.status = status
        # 204/404 are known outcomes; anything else (5xx, no answer) may or
        # may not have taken effect, at any time after its start.
        self.known = status in (204, 404)
        self.start = start
        self.end = end if self.known else math.inf


def _step(present, op):
    """(allowed, present after) for ``op`` taking effect now."""
    if op.method == 'PUT':
        if op.known:
            return op.status == 204, True
        return True, True
    if not op.known:
        return True, False
    if op.status == 204:
        return present, False
    return not present, False  # 404


def linearizable(ops, final, initial=False, budget=SEARCH_BUDGET):
    """True/False: is there an order of ``ops`` within their intervals,
    right for every answer, from ``initial`` to ``final`` presence? None if
    the search exceeded ``budget`` states.

    Wing & Gong: repeatedly take, as the next operation, one that started
    before every remaining one ended; memoised on (set done, presence).
    Operations of unknown outcome may also be left out.
    """
    ops = sorted(ops, key=lambda op: op.start)
    n = len(ops)
    required = 0
    for i, op in enumerate(ops):
        if op.known:
            required |= 1 << i
    seen = set()
    stack = [(0, initial)]
    while stack:
        done, present = stack.pop()
        if (done, present) in seen:
            continue
        seen.add((done, present))
        if len(seen) > budget:
            return None
        if done & required == required and present == final:
            return True
        lowest = (~done & (done + 1)).bit_length() - 1
        min_end = math.inf
        candidates = []
        for i in range(lowest, n):
            if done >> i & 1:
                continue
            op = ops[i]
            if op.start > min_end:
                break
            candidates.append(i)
            min_end = min(min_end, op.end)
        for i in candidates:
            if ops[i].start > min_end:
                continue
            allowed, after = _step(present, ops[i])
            if allowed:
                stack.append((done | 1 << i, after))
    return False


def check(records, final_tags, images, clients, threads):
    """Problems found (strings), and figures for the report."""
    problems = []
    figures = collections.Counter()
    by_key = collections.defaultdict(list)
    for client, thread, seq, image, tag, method, status, start, end in (
            sorted(records, key=lambda r: (r[0], r[1], r[2]))):
        by_key[image, tag].append((client, thread, seq, method, status,
                                   start, end))
        if status is None:
            figures['no answer'] += 1
        elif status >= 500:
            figures['5xx'] += 1
            if status == 503:
                figures['503'] += 1
        elif status not in (204, 404) or (method == 'PUT' and status != 204):
            figures['unexpected'] += 1
            problems.append('unexpected %s %r on image %d -> %s'
                            % (method, tag, image, status))
    allowed = set(SHARED_TAGS)
    for c in range(clients):
        for t in range(threads):
            allowed.update(owned_tags(c, t))
    for image, tags in enumerate(final_tags):
        duplicates = [t for t, k in collections.Counter(tags).items() if k > 1]
        if duplicates:
            problems.append('image %d: duplicate live tags %r'
                            % (image, duplicates))
        strangers = set(tags) - allowed
        if strangers:
            problems.append('image %d: unknown tags %r' % (image, strangers))
    for image in range(len(images)):
        for tag in sorted(allowed):
            ops = by_key.get((image, tag), [])
            present = tag in final_tags[image]
            if tag in SHARED_TAGS:
                figures['shared keys'] += 1
                figures['shared ops'] += len(ops)
                problem = _check_shared(ops, present)
            else:
                figures['owned keys'] += 1
                figures['owned ops'] += len(ops)
                problem = _check_owned(ops, present)
            if problem:
                problems.append('image %d, tag %r: %s' % (image, tag, problem))
    return problems, figures


def _check_owned(ops, present):
    """One thread's tag: the answers follow from the thread's own order."""
    expect = False
    for client, thread, seq, method, status, start, end in ops:
        if status not in (204, 404):
            return ('request %d.%d.%d (%s) answered %s: outcome unknown, '
                    'exact check impossible' % (client, thread, seq, method,
                                                status))
        if method == 'PUT':
            want = 204
            expect = True
        else:
            want = 204 if expect else 404
            expect = False
        if status != want:
            return ('request %d.%d.%d %s answered %s, expected %s (tag %s '
                    'before it)' % (client, thread, seq, method, status, want,
                                    'absent' if want == 404 else 'present'))
    if present != expect:
        return 'finally %s, but the answers imply %s' % (
            'present' if present else 'absent',
            'present' if expect else 'absent')
    return None


def _check_shared(ops, present):
    puts = sum(1 for o in ops if o[3] == 'PUT' and o[4] == 204)
    deletes = sum(1 for o in ops if o[3] == 'DELETE' and o[4] == 204)
    if deletes + present > puts:
        return ('%d DELETEs answered 204 and the tag is %s, but only %d PUTs '
                'answered 204' % (deletes, 'present' if present else 'absent',
                                  puts))
    result = linearizable([Op(o[3], o[4], o[5], o[6]) for o in ops], present)
    if result is None:
        return ('inconclusive: %d requests, search budget exceeded'
                % len(ops))
    if not result:
        return ('no order of the %d requests within their times explains '
                'the answers and the final presence (%s): PUT 204 x %d, '
                'DELETE 204 x %d, DELETE 404 x %d'
                % (len(ops), 'present' if present else 'absent', puts,
                   deletes, sum(1 for o in ops if o[4] == 404)))
    return None


# --- one backend --------------------------------------------------------

def run(backend, seconds, clients=4, threads=3, images=3, workers=4,
        seed=None, out=print, server_threads=1):
    """Soak one backend; returns a summary dict (``problems`` empty = pass).

    Raises unittest.SkipTest if the database server is unreachable.
    """
    import contextlib

    import fixtures

    from imagetags import db
    from imagetags.tests import fixtures as it_fixtures

    seed = seed if seed is not None else random.randrange(1 << 30)
    database = (it_fixtures.Galera() if backend == 'galera'
                else it_fixtures.Database(backend))
    try:
        database.setUp()
    except fixtures.MultipleExceptions as e:
        # Outside a TestCase the fixture wraps its skip: unwrap it.
        for _, error, _ in e.args:
            if isinstance(error, unittest.SkipTest):
                raise error
        raise
    try:
        with tempfile.TemporaryDirectory(prefix='soak-') as workdir, \
                contextlib.ExitStack() as stack:
            log_files = []
            nodes = ([it_fixtures.merge(options, {'database': {
                'mysql_wsrep_sync_wait': 1}}) for options in database.options]
                if backend == 'galera' else [database.options])
            config_dirs = []
            for n, options in enumerate(nodes):
                log_files.append(os.path.join(workdir, 'imagetags-%d.log' % n))
                config_dirs.append(stack.enter_context(it_fixtures.ConfigDir(
                    it_fixtures.merge(options, {'DEFAULT': {
                        'image_tag_quota': -1, 'debug': True,
                        'log_file': log_files[-1]}}))))
            driver = db.load_driver(config_dirs[0].conf())
            image_ids = [str(uuid.uuid4()) for _ in range(images)]
            for image_id in image_ids:
                driver.create_image(image_id, PROJECT, 'private')
            # --preload: the app is built once and the workers fork ready.
            servers = [stack.enter_context(it_fixtures.Gunicorn(
                config_dir, workers=max(1, workers // len(config_dirs)),
                extra_args=['--preload', '--threads', str(server_threads)]))
                for config_dir in config_dirs]
            records, elapsed = run_clients(
                [server.url for server in servers], image_ids, seconds,
                clients, threads, seed, workdir)
            gunicorn_log = ''.join(_read(server.log) for server in servers)
            final = [driver.show_image(i)['tags'] for i in image_ids]
            driver.engine.dispose()
            server_log = ''.join(_read(log_file) for log_file in log_files)
    finally:
        database.cleanUp()
    problems, figures = check(records, final, image_ids, clients, threads)
    counts = collections.Counter((r[5], r[6]) for r in records)
    latencies = sorted(r[8] - r[7] for r in records)
    summary = {
        'backend': backend, 'seconds': seconds, 'elapsed': elapsed,
        'seed': seed, 'clients': clients, 'threads': threads,
        'images': images, 'workers': workers,
        'server threads': server_threads,
        'operations': len(records),
        'counts': {'%s %s' % k: v for k, v in sorted(counts.items(),
                                                     key=str)},
        '5xx': figures['5xx'], '503': figures['503'],
        'no answer': figures['no answer'],
        'unexpected': figures['unexpected'],
        'retries': server_log.count(RETRY_MARK),
        'busy warnings': sum(server_log.count(m) for m in BUSY_MARKS),
        'server errors logged': server_log.count(' ERROR '),
        'worker timeouts': gunicorn_log.count('WORKER TIMEOUT'),
        'latency ms': {str(p): round(1000 * _percentile(latencies, p), 1)
                       for p in (50, 99, 100)},
        'owned': (figures['owned keys'], figures['owned ops']),
        'shared': (figures['shared keys'], figures['shared ops']),
        'final tags': sum(len(tags) for tags in final),
        'problems': problems,
    }
    if summary['5xx'] or summary['no answer']:
        problems.append('%d answers 5xx (%d of them 503), %d requests without '
                        'an answer' % (summary['5xx'], summary['503'],
                                       summary['no answer']))
    report(summary, out)
    return summary


def _read(path):
    try:
        with open(path, errors='replace') as f:
            return f.read()
    except OSError:
        return ''


def _percentile(values, p):
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def report(s, out=print):
    out('soak %s: %.1f s, %d client processes x %d threads, %d images, '
        'gunicorn %d workers of %d threads, seed %d'
        % (s['backend'], s['elapsed'], s['clients'], s['threads'],
           s['images'], s['workers'], s['server threads'], s['seed']))
    out('  operations: %d (%.0f/s): %s' % (
        s['operations'], s['operations'] / max(s['elapsed'], 1e-9),
        ', '.join('%s=%d' % kv for kv in s['counts'].items())))
    out('  latency ms: p50 %(50)s, p99 %(99)s, max %(100)s' % s['latency ms'])
    out('  5xx: %d (503: %d), no answer: %d, unexpected statuses: %d'
        % (s['5xx'], s['503'], s['no answer'], s['unexpected']))
    out('  conflicts retried (oslo.db "%s" in the server log): %d; busy '
        'warnings: %d; errors logged: %d; worker timeouts: %d'
        % (RETRY_MARK, s['retries'], s['busy warnings'],
           s['server errors logged'], s['worker timeouts']))
    out('  final check: owned tags exact (%d keys, %d requests), shared tags '
        'linearizable (%d keys, %d requests), %d tags at the end: %s'
        % (s['owned'] + s['shared'] + (s['final tags'],
                                       'OK' if not s['problems'] else
                                       '%d PROBLEMS' % len(s['problems']))))
    for problem in s['problems'][:50]:
        out('    ' + problem)


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m imagetags.tests.soak',
                                     description=__doc__.split('\n')[0])
    parser.add_argument('--seconds', type=float, default=float(
        os.environ.get('SOAK_SECONDS', 60)),
        help='per backend (default: $SOAK_SECONDS or 60)')
    parser.add_argument('--backends', default=os.environ.get(
        'SOAK_BACKENDS', ','.join(BACKENDS)))
    parser.add_argument('--clients', type=int, default=4,
                        help='client processes')
    parser.add_argument('--threads', type=int, default=3,
                        help='threads per client process')
    parser.add_argument('--images', type=int, default=3)
    parser.add_argument('--workers', type=int, default=4,
                        help='gunicorn workers')
    parser.add_argument('--server-threads', type=int, default=1,
                        help='threads per gunicorn worker (1: sync workers)')
    parser.add_argument('--seed', type=int)
    parser.add_argument('--client', type=json.loads, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:
        return client(args.client)
    failed, skipped = [], []
    for backend in args.backends.split(','):
        try:
            summary = run(backend, args.seconds, args.clients, args.threads,
                          args.images, args.workers, args.seed,
                          server_threads=args.server_threads)
        except unittest.SkipTest as e:
            print('soak %s: skipped: %s' % (backend, e))
            skipped.append(backend)
            continue
        finally:
            sys.stdout.flush()
        if summary['problems']:
            failed.append(backend)
    print('soak: %s%s' % ('FAILED on ' + ', '.join(failed) if failed else 'OK',
                          ' (skipped: %s)' % ', '.join(skipped)
                          if skipped else ''))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
