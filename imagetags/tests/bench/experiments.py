"""Measured effect of proposed speed fixes, applied here as monkeypatches.

    python -m imagetags.tests.bench experiments [DRIVER ...] [-n N]
                                                [--reps R] [--only P,P]

Each fix below is applied in-process, the way the proposed change to
imagetags would behave, without editing imagetags: the numbers show what the
change is worth before anyone makes it. Cumulative steps (each adds one fix
to the ones before it) run in fresh subprocesses, interleaved, R times each
(the minimum is reported, as the least disturbed by other load), N rounds
of the four request kinds through the noauth pipeline; the figure is CPU
time of the process per request (``time.process_time``), which other load on
the machine does not inflate the way it inflates wall time.

The whole bench runs with fixes applied when ``BENCH_PATCHES`` names them
(comma separated), in process and in the gunicorn workers, e.g.
``BENCH_PATCHES=policy_argspec,policy_reload tox -e bench``.

Fixes:

- ``policy_argspec``: oslo.policy's ``_checks._check`` calls
  ``inspect.getfullargspec(rule.__call__)`` on every node of every rule on
  every check; cache the answer per check class.
- ``policy_literal``: oslo.policy's ``GenericCheck`` (``project_id:%(...)s``,
  ``'public':%(visibility)s``) runs ``ast.literal_eval(kind)`` on every
  evaluation, which parses the text and, for a name like ``project_id``,
  raises ValueError; cache the outcome per kind.
- ``policy_validate_once``: imagetags' ``Enforcer.load_rules`` walks the
  graph of the rules it enforces (undefined rules, cycles) after every
  ``load_rules``, i.e. on every check; walk it only when the rules changed.
- ``policy_reload``: oslo.policy's ``Enforcer.load_rules`` (run by every
  ``enforce``) searches the config dirs for ``policy.yaml`` and
  ``policy.d`` (several stat() calls each) when there is no policy file,
  and stats it when there is; look at most once a second.
- ``middleware_argspec``: oslo.middleware's ``ConfigurableMiddleware``
  (``http_proxy_to_wsgi``) calls ``getfullargspec(self.process_response)``
  on every request; cache it per function.
- ``sql_lean_pool``: oslo.db creates engines with ``pool_pre_ping=True``
  (a ping round trip on every checkout) and a ``checkin`` listener that
  calls ``time.sleep(0)`` (for eventlet), and SQLAlchemy's pool rolls back
  every connection it gets back even though ``engine.begin()`` has just
  committed or rolled back (``Connection.close`` skips that reset only when
  it ends the transaction itself): a ``ROLLBACK`` round trip on MariaDB
  (PyMySQL sends it; psycopg2 and sqlite3 skip it when idle). Drop all three
  (the driver always ends its transaction, and retries a whole transaction
  on a lost connection).
- ``sqlite_pool``: oslo.db forces ``NullPool`` on file SQLite, so every
  request opens the file, reads the schema and closes it; pool connections
  (SQLAlchemy's own default for file databases, ``QueuePool``).
"""
import argparse
import functools
import inspect
import json
import os
import subprocess
import sys
import tempfile
import time

STEPS = ['policy_argspec', 'policy_literal', 'policy_validate_once',
         'policy_reload', 'middleware_argspec', 'sql_lean_pool',
         'sqlite_pool']


def policy_argspec():
    from oslo_policy import _checks

    @functools.lru_cache(maxsize=None)
    def takes_current_rule(call):
        return len(inspect.getfullargspec(call).args) > 4

    def _check(rule, target, creds, enforcer, current_rule):
        if takes_current_rule(type(rule).__call__):
            return rule(target, creds, enforcer, current_rule)
        return rule(target, creds, enforcer)

    _checks._check = _check


def policy_literal():
    import ast
    from oslo_policy import _checks

    @functools.lru_cache(maxsize=4096)
    def literal(kind):
        try:
            return True, str(ast.literal_eval(kind))
        except ValueError:
            return False, None

    def __call__(self, target, creds, enforcer, current_rule=None):
        try:
            match = self.match % target
        except KeyError:
            return False
        is_literal, value = literal(self.kind)
        if is_literal:
            return match == value
        return self._find_in_dict(creds, self.kind.split('.'), match)

    _checks.GenericCheck.__call__ = __call__


def policy_validate_once():
    from imagetags import policy
    check = getattr(policy.Enforcer, '_check', None)
    if check is None:
        return

    def once(self, rule, path):
        if len(path) != 1:
            return check(self, rule, path)
        key = (id(self.rules), len(self.rules), path[0], id(rule))
        done = self.__dict__.setdefault('_validated', set())
        if key not in done:
            check(self, rule, path)
            done.add(key)

    policy.Enforcer._check = once


def policy_reload():
    from imagetags import policy
    load_rules = policy.Enforcer.load_rules

    def throttled(self, force_reload=False):
        now = time.monotonic()
        if (self.loaded and not force_reload
                and now < getattr(self, '_next_load', 0)):
            return
        self._next_load = now + 1.0
        load_rules(self, force_reload)

    policy.Enforcer.load_rules = throttled


def middleware_argspec():
    from oslo_middleware import base

    @functools.lru_cache(maxsize=None)
    def cached(func):
        return inspect.getfullargspec(func)

    def getfullargspec(f):
        func = getattr(f, '__func__', None)
        return cached(func) if func is not None else inspect.getfullargspec(f)

    base.getfullargspec = getfullargspec


def _patch_driver_init(fn):
    from imagetags.db import sql
    init = sql.SQLDriver.__init__

    def patched(self, conf):
        init(self, conf)
        fn(self)

    sql.SQLDriver.__init__ = patched


def sql_lean_pool():
    import sqlalchemy as sa
    from oslo_db.sqlalchemy import engines
    from sqlalchemy.pool import base as pool_base

    def fix(driver):
        driver.engine.pool._pre_ping = False
        driver.engine.pool._reset_on_return = pool_base.reset_none
        if sa.event.contains(driver.engine, 'checkin', engines._thread_yield):
            sa.event.remove(driver.engine, 'checkin', engines._thread_yield)
    _patch_driver_init(fix)


def sqlite_pool():
    import sqlalchemy as sa

    def fix(driver):
        old = driver.engine.pool
        if (driver.engine.dialect.name == 'sqlite'
                and isinstance(old, sa.pool.NullPool)):
            driver.engine.pool = sa.pool.QueuePool(
                old._creator, pool_size=5, max_overflow=10,
                recycle=old._recycle, pre_ping=old._pre_ping,
                reset_on_return=old._reset_on_return, _dispatch=old.dispatch,
                dialect=old._dialect)
    _patch_driver_init(fix)


def apply(names):
    """Apply the named fixes to this process (see BENCH_PATCHES)."""
    for name in names:
        if name not in STEPS:
            raise SystemExit('unknown fix %r; choose from %s'
                             % (name, ', '.join(STEPS)))
        globals()[name]()


def from_env():
    names = [n.strip() for n in os.environ.get('BENCH_PATCHES', '').split(',')
             if n.strip()]
    apply(names)
    return names


def child(driver, patches, n):
    apply(patches)
    from imagetags.tests.bench import backends as bk
    from imagetags.tests.bench import inproc
    from imagetags.tests.bench import settings as bench_settings
    s = bench_settings.load()
    workdir = tempfile.mkdtemp(prefix='imagetags-exp-')
    backend = bk.Backend(driver, s, workdir)
    try:
        if not backend.prepare():
            return {'skip': backend.skip}
        app, tags_app, images = inproc.load(backend)
        inproc.execute(app, inproc.plan(images, 100, 'w'))
        raw = inproc.execute(app, inproc.plan(images, n))
        if backend.is_sql:
            tags_app.driver.engine.dispose()
        out = {k: r['cpu'] / len(r['wall']) / 1000 for k, r in raw.items()}
        out.update({'wall_' + k: sorted(r['wall'])[len(r['wall']) // 2] / 1000
                    for k, r in raw.items()})
        out['bad'] = sum(r['bad'] for r in raw.values())
        return out
    finally:
        backend.cleanup()


def main(argv):
    parser = argparse.ArgumentParser(
        prog='python -m imagetags.tests.bench experiments',
        description=__doc__.splitlines()[0])
    parser.add_argument('drivers', nargs='*',
                        default=['memory', 'sqlite', 'mysql', 'postgresql'])
    parser.add_argument('-n', type=int, default=500)
    parser.add_argument('--reps', type=int, default=3)
    parser.add_argument('--only', default=','.join(STEPS))
    parser.add_argument('--child', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        patches = [p for p in args.child.split(',') if p]
        print('RESULT ' + json.dumps(child(args.drivers[0], patches,
                                           args.n)))
        return 0
    steps = [s for s in args.only.split(',') if s]
    kinds = ('put', 'delete', 'delete_absent', 'put_present')
    rows = []
    for driver in args.drivers:
        plan, applied = [], []
        for step in ['baseline'] + steps:
            if step != 'baseline':
                if driver == 'memory' and step.startswith('sql'):
                    continue
                if step == 'sqlite_pool' and driver != 'sqlite':
                    continue
                applied.append(step)
            plan.append(('+ ' + step if applied else step, list(applied)))
        # Interleaved: each repetition runs every step once, so that other
        # load on the machine spreads over all of them.
        best = {}
        skipped = None
        for _ in range(args.reps):
            for label, patches in plan:
                out = subprocess.run(
                    [sys.executable, '-m', 'imagetags.tests.bench',
                     'experiments', driver, '-n', str(args.n), '--child',
                     ','.join(patches)], capture_output=True, text=True,
                    timeout=1200, env=os.environ)
                line = [x for x in out.stdout.splitlines()
                        if x.startswith('RESULT ')]
                if not line:
                    raise RuntimeError(out.stdout + out.stderr)
                res = json.loads(line[-1][7:])
                if 'skip' in res:
                    skipped = res['skip']
                    break
                best[label] = res if label not in best else {
                    k: min(best[label][k], res[k]) for k in res}
            if skipped:
                break
        if skipped:
            print('%s: skipped (%s)' % (driver, skipped))
            continue
        for label, _ in plan:
            rows.append((driver, label, best[label]))
            print('%-10s %-16s ' % (driver, label) + '  '.join(
                '%s %6.0f' % (k, best[label][k]) for k in kinds)
                + ('  WRONG STATUS %d' % best[label]['bad']
                   if best[label]['bad'] else ''), flush=True)
    print('\n| driver | step (cumulative) | ' + ' | '.join(
        'CPU us %s' % k for k in kinds) + ' | ' + ' | '.join(
        'wall p50 us %s' % k for k in kinds) + ' |')
    print('|---|---|' + '---|' * 2 * len(kinds))
    for driver, step, b in rows:
        print('| %s | %s | ' % (driver, step) + ' | '.join(
            '%.0f' % b[k] for k in kinds) + ' | ' + ' | '.join(
            '%.0f' % b['wall_' + k] for k in kinds) + ' |')
    return 0
