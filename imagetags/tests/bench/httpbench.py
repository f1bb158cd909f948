"""Over HTTP: gunicorn + wrk, imagetags next to its two floors, and RSS.

Servers come in groups, each led by its floor: the no-op floor with
imagetags on the memory driver, then per SQL backend the one-SQL floor,
imagetags, and the bare app (``wsgi_apps.make_bare``: imagetags' driver
without the pipeline). A group's servers are all started and warmed up,
then each scenario (``cycle``, ``absent``; see ``load``) is run in slices of
``BENCH_SLICE`` seconds, every server in each slice, in ABBA order (the
order is reversed every other slice). This machine's speed drifts by
20-30% over tens of seconds (shared cores): a server measured right after
its floor sees the same machine, so each slice gives one ratio to the
floor, and the report takes their median. One image per connection, the
same ones in every slice (a cycle slice uses new tags). Server CPU is the
gunicorn master's and workers' CPU time (``/proc/<pid>/stat``) over the
slice; DB CPU that of the database server's processes (MariaDB,
PostgreSQL).
"""
import contextlib
import statistics
import uuid

from imagetags.tests.bench import load
from imagetags.tests.bench import server

APPS = 'imagetags.tests.bench.wsgi_apps:'
SCENARIOS = ('cycle', 'absent')
EXPECTED = {'cycle': (204,), 'absent': (404,)}
METRICS = ('rps', 'p50_ms', 'p99_ms', 'unexpected', 'http_5xx',
           'socket_errors', 'server_cpu_ms', 'db_cpu_ms', 'wrk_cpu_pct',
           'requests')


class Runner:
    def __init__(self, settings, workdir, wrk):
        self.s = settings
        self.workdir = workdir
        self.wrk = wrk
        self.script = load.write_script(workdir)
        self.log_path = workdir + '/gunicorn.log'
        self.samples = {}     # (backend, app, scenario) -> [metrics, ...]
        self.ratios = {}      # the same keys -> [req/s over the floor's]
        self.notes = []

    def measure(self, srv, mode, images, db_names=(), duration=None,
                expected=None):
        duration = duration or self.s.duration
        db_pids = server.pids_named(db_names)
        cpu0 = srv.cpu_seconds()
        db0 = server.cpu_seconds(db_pids)
        res = load.run_wrk(self.wrk, self.script, srv.url, mode, images,
                           uuid.uuid4().hex[:6], len(images), duration)
        cpu1 = srv.cpu_seconds()
        db_pids = sorted(set(db_pids) | set(server.pids_named(db_names)))
        db1 = server.cpu_seconds(db_pids)
        n = max(1, res['requests'])
        secs = res['duration_us'] / 1e6
        statuses = res['statuses']
        expected = expected or EXPECTED[mode]
        return {
            'requests': res['requests'],
            'rps': res['requests'] / secs if secs else 0.0,
            'p50_ms': res['p50'] / 1000,
            'p99_ms': res['p99'] / 1000,
            'unexpected': sum(v for k, v in statuses.items()
                              if k not in expected),
            'http_5xx': sum(v for k, v in statuses.items() if k >= 500),
            'socket_errors': res['connect'] + res['read'] + res['write']
            + res['timeout'],
            'server_cpu_ms': (cpu1 - cpu0) * 1000 / n,
            'db_cpu_ms': (db1 - db0) * 1000 / n if db_names else None,
            'wrk_cpu_pct': 100 * res['wrk_cpu_s'] / secs if secs else 0.0,
            'statuses': statuses,
        }

    def _group(self, servers):
        """Run the scenarios on ``servers`` (the floor first), all started
        and warmed up, in paired slices (see the module's docstring).
        ``servers``: (key, app, env, images_for, db_names, scenarios)."""
        slices = self.s.repeat * max(1, round(self.s.duration / self.s.slice))
        with contextlib.ExitStack() as stack:
            live = []
            for key, app, env, images_for, db_names, scenarios in servers:
                srv = stack.enter_context(server.Gunicorn(
                    app, self.s.workers, env, self.log_path))
                if self.s.warmup > 0:
                    self.measure(srv, 'cycle', images_for('warmup'),
                                 db_names, duration=self.s.warmup)
                live.append((key, srv, images_for, db_names, scenarios))
            for n in range(slices):
                for mode in SCENARIOS:
                    rps = {}
                    for key, srv, images_for, db_names, scenarios in (
                            live if n % 2 == 0 else live[::-1]):
                        if mode not in scenarios:
                            continue
                        m = self.measure(srv, mode, images_for(mode),
                                         db_names, duration=self.s.slice,
                                         expected=(204,) if key[0] == 'noop'
                                         else None)
                        self.samples.setdefault(key + (mode,), []).append(m)
                        rps[key] = m['rps']
                        print('  %2d/%d %-10s %-9s %-7s %8.0f req/s  p50 '
                              '%6.2f ms  p99 %6.2f ms  cpu %.3f ms/req  '
                              'unexpected %d  5xx %d'
                              % (n + 1, slices, key[0], key[1], mode,
                                 m['rps'], m['p50_ms'], m['p99_ms'],
                                 m['server_cpu_ms'], m['unexpected'],
                                 m['http_5xx']), flush=True)
                    floor = rps.pop(live[0][0], None)
                    for key, value in rps.items():
                        if floor:
                            self.ratios.setdefault(key + (mode,), []).append(
                                value / floor)

    def run(self, backend_list):
        conns = self.s.connections
        fake = ['floor-%02d' % i for i in range(conns)]
        live = [b for b in backend_list if not b.skip]
        noop = [(('noop', 'floor'), APPS + 'make_noop()', {},
                 lambda mode: fake, (), SCENARIOS)]
        for b in live:
            if b.is_sql:
                continue
            images = {m: ['mem-%s-%02d' % (m, i) for i in range(conns)]
                      for m in ('warmup',) + SCENARIOS}
            scenarios = SCENARIOS
            if self.s.workers > 1:
                # Each worker has its own memory: a DELETE may reach
                # another worker than its PUT did.
                scenarios = ('absent',)
                self.notes.append(
                    'memory driver, cycle over HTTP: not run with %d '
                    'workers (each worker process has its own memory, so a '
                    'DELETE may not find the tag its PUT added in another '
                    'worker)' % self.s.workers)
            noop.append(((b.name, 'imagetags'), APPS + 'make_imagetags()',
                         {'BENCH_CONFIG_DIR': b.config_dir,
                          'BENCH_SEED_IMAGES': ','.join(
                              sum(images.values(), []))},
                         images.get, (), scenarios))
        print('HTTP: no-op floor%s' % (', memory' if len(noop) > 1 else ''),
              flush=True)
        self._group(noop)
        for b in live:
            if not b.is_sql:
                continue
            print('HTTP: %s' % b.label, flush=True)
            env = {'BENCH_CONFIG_DIR': b.config_dir}
            group = [((b.name, 'floor'), APPS + 'make_one_sql()',
                      {'BENCH_FLOOR_URL': b.url}, lambda mode: fake,
                      b.db_processes, SCENARIOS)]
            for app in ('imagetags', 'bare'):
                images = {m: b.new_images(conns, m[:4])
                          for m in ('warmup',) + SCENARIOS}
                group.append(((b.name, app), APPS + 'make_%s()' % app, env,
                              images.get, b.db_processes, SCENARIOS))
            self._group(group)
        return self.medians()

    def medians(self):
        out = {}
        for key, runs in self.samples.items():
            agg = {}
            for metric in METRICS:
                values = [r[metric] for r in runs if r[metric] is not None]
                agg[metric] = statistics.median(values) if values else None
            agg['runs'] = len(runs)
            # The median of its ratios to its group's floor, slice by slice.
            ratios = self.ratios.get(key)
            agg['x_floor'] = statistics.median(ratios) if ratios else None
            out[key] = agg
        return out

    def rss(self, backend):
        """RSS of the single worker after each count of cycle requests."""
        counts = sorted(self.s.rss_counts)
        conns = 2
        if backend.is_sql:
            images = backend.new_images(conns, 'rss')
            env = {'BENCH_CONFIG_DIR': backend.config_dir}
        else:
            images = ['mem-rss-%d' % i for i in range(conns)]
            env = {'BENCH_CONFIG_DIR': backend.config_dir,
                   'BENCH_SEED_IMAGES': ','.join(images)}
        readings = []
        done = 0
        budget = self.s.rss_timeout
        with server.Gunicorn(APPS + 'make_imagetags()', 1, env,
                             self.log_path) as srv:
            worker = srv.worker_pids()[0]
            readings.append((0, server.rss_kb(worker)))
            for count in counts:
                per_conn = max(1, (count - done) // conns)
                res = load.run_wrk(self.wrk, self.script, srv.url, 'cycle',
                                   images, uuid.uuid4().hex[:6], conns,
                                   budget, limit=per_conn, timeout=budget)
                done += res['requests']
                budget -= res['duration_us'] / 1e6
                if srv.worker_pids() != [worker]:
                    raise RuntimeError('the RSS worker was replaced')
                readings.append((done, server.rss_kb(worker)))
                print('  RSS %-10s after %7d requests: %7d kB (%.0f req/s, '
                      'non-2xx %d)' % (backend.name, done, readings[-1][1],
                                       res['requests'] / max(
                                           1e-9, res['duration_us'] / 1e6),
                                       sum(v for k, v in
                                           res['statuses'].items()
                                           if k >= 300)), flush=True)
                if res.get('stopped_early') or budget <= 0:
                    self.notes.append(
                        'RSS on %s: stopped at %d requests, short of %d '
                        '(BENCH_RSS_TIMEOUT)' % (backend.label, done, count))
                    break
        return {'backend': backend.name, 'counts': counts,
                'readings': readings}
