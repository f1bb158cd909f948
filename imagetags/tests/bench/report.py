"""The markdown report: details first, the issue's targets table last."""
from imagetags.tests.bench import backends as bk

KIND_LABELS = {'put': 'PUT (new tag)', 'delete': 'DELETE',
               'delete_absent': 'DELETE absent (404)',
               'put_present': 'PUT present (no-op)',
               'delete_absent_tagged': 'DELETE absent, 128 tags'}
SCENARIO_LABELS = {'cycle': 'PUT+DELETE cycle', 'absent': 'DELETE absent'}

# The targets of issue 5.
CYCLE_MIN = 0.60
ABSENT_MIN = 0.70
CPU_MAX_MS = 1.0
SQL_GOAL, SQL_MAX = 3, 5
P99_MAX = 2.0
RSS_MAX_MB = 5.0


HOW_TO_READ = '''\
- Floors, under the same gunicorn and wrk in the same run: the no-op app
  answers 204 at once; the one-SQL app runs one statement and its commit on
  the same database per request (PUT: INSERT of a row, DELETE: DELETE of
  it; DELETE absent: a DELETE that finds no row, answered 404).
- The bare app (not a floor): imagetags' SQL driver behind a bare WSGI
  function, without the Paste pipeline and its libraries (webob, Routes,
  oslo.context, oslo.policy, the request id and context filters); the same
  statements and answers. imagetags over it is what the pipeline costs.
- Each group of servers (a floor, then what is compared with it) runs
  every scenario in slices, every server in each slice, in ABBA order;
  req/s, latencies and CPU are medians over the slices. "x one-SQL floor"
  / "x no-op floor": the median over the slices of the server's req/s over
  its floor's in the same slice (the no-op floor is in the memory driver's
  group: for the SQL drivers that column is the ratio of the medians). The
  targets' "(a / b req/s)" are the medians, whose ratio can differ a
  little from the median ratio.
- Server CPU: gunicorn master and workers (utime+stime from /proc) over the
  scenario, per request; DB CPU: the database server's processes. On 2
  cores, req/s is bounded by the sum of server, DB and wrk CPU per request.
- In process: the same Paste pipeline called directly; CPU is this
  process's CPU time (includes the kernel's, e.g. SQLite's fsync work),
  wall includes waiting for the database. "ping+commit+rollback" are the
  calls the dialect makes besides statements (pool pre-ping, commit,
  rollback, the pool's rollback-on-return), each a round trip on MariaDB
  and PostgreSQL (the driver's PostgreSQL connections are in autocommit:
  it sends none). "Round trips" are the cursor executions (one
  may carry several statements) plus those calls; on SQLite they are
  calls into the library, not network round trips.'''


def _f(value, fmt='%.2f'):
    return 'n/a' if value is None else fmt % value


def _table(header, rows):
    out = ['| ' + ' | '.join(header) + ' |',
           '|' + '|'.join('---' for _ in header) + '|']
    out += ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]
    return '\n'.join(out)


def _ratio(r, it, floor, target=None):
    """With three decimals where two would round across the target (0.595
    shown as 0.60 beside FAIL)."""
    fmt = '%.2f'
    if target is not None and (float(fmt % r) >= target) != (r >= target):
        fmt = '%.3f'
    return (fmt + ' (%.0f / %.0f req/s)') % (r, it['rps'], floor['rps'])


def _x(it, floor):
    """it's req/s over the floor's: the median of the slices' ratios where
    both ran in the same slices, else the ratio of the medians."""
    if it.get('x_floor') is not None:
        return it['x_floor']
    return it['rps'] / floor['rps']


def _x_noop(name, it, noop):
    """it's req/s over the no-op floor's: paired slices for the memory
    driver (the no-op floor's group); for the SQL drivers, whose slices
    paired them with their one-SQL floor, the ratio of the medians."""
    return _x(it, noop) if name == 'memory' else it['rps'] / noop['rps']


def _verdict(ok):
    return 'n/a' if ok is None else ('PASS' if ok else 'FAIL')


class Report:
    def __init__(self, settings, header, backend_list, inproc, http, rss,
                 notes):
        self.s = settings
        self.header = header
        self.backends = backend_list
        self.inproc = inproc          # name -> inproc.run() result
        self.http = http or {}        # (name, app, scenario) -> medians
        self.rss = rss or []          # httpbench.Runner.rss() results
        self.notes = notes

    def render(self):
        parts = ['# imagetags benchmark (issue 5)', '', self.header, '']
        skipped = [b for b in self.backends if b.skip]
        if skipped or self.notes:
            parts += ['## Skipped and notes', '']
            parts += ['- %s' % b.skip for b in skipped]
            parts += ['- %s' % n for n in self.notes]
            parts.append('')
        if self.inproc:
            parts += ['## In process (noauth Paste pipeline, '
                      'webob.Request.blank)', '', self.inproc_table(), '']
        if self.http:
            parts += ['## Over HTTP (gunicorn %d sync workers, wrk %d '
                      'connections, %gs per scenario x %d, in %gs slices: '
                      'medians of the slices)'
                      % (self.s.workers, self.s.connections, self.s.duration,
                         self.s.repeat, self.s.slice), '', self.http_table(),
                      '']
        if self.rss:
            parts += ['## Worker RSS (gunicorn 1 sync worker, PUT+DELETE '
                      'cycles)', '', self.rss_table(), '']
        samples = self.sql_samples()
        if samples:
            parts += [samples, '']
        parts += ['## How to read this', '', HOW_TO_READ, '']
        if self.http and self.s.repeat < 3:
            parts += ['One repetition per scenario: on a shared 2-core '
                      'machine req/s move by 20-30% from run to run; use '
                      'BENCH_REPEAT=3 (more slices) before deciding '
                      'anything.', '']
        parts += ['## Targets of issue 5', '', self.targets_table(), '']
        return '\n'.join(parts)

    def inproc_table(self):
        rows = []
        for b in self.backends:
            res = self.inproc.get(b.name)
            if not res:
                continue
            for kind, label in KIND_LABELS.items():
                r = res['kinds'][kind]
                rows.append([b.label, label, '%.0f' % r['p50_us'],
                             '%.0f' % r['p99_us'], '%.0f' % r['cpu_us'],
                             '%.2f' % r['sql'], '%.2f' % r['calls'],
                             '%.2f' % r.get('trips', 0), r['bad'] or ''])
        return _table(['driver', 'request', 'wall p50 us', 'wall p99 us',
                       'CPU us (mean)', 'SQL stmts/req',
                       'ping+commit+rollback/req', 'round trips/req',
                       'wrong status'], rows)

    def _floor(self, name, scenario):
        return self.http.get((name, 'floor', scenario))

    def http_table(self):
        rows = []
        noop = self.http
        for key in self._http_keys():
            name, app, scenario = key
            m = noop[key]
            one_sql = self._floor(name, scenario) if name != 'noop' else None
            floor0 = self._floor('noop', scenario)
            label = ('no-op app' if name == 'noop' else
                     '%s one-SQL app' % bk.LABELS[name] if app == 'floor'
                     else 'bare app, %s driver' % bk.LABELS[name]
                     if app == 'bare' else 'imagetags %s' % bk.LABELS[name])
            ratio_sql = (_x(m, one_sql)
                         if app != 'floor' and one_sql else None)
            ratio_noop = (_x_noop(name, m, floor0)
                          if app != 'floor' and floor0 else None)
            rows.append([label, SCENARIO_LABELS[scenario],
                         '%.0f' % m['rps'], '%.2f' % m['p50_ms'],
                         '%.2f' % m['p99_ms'], '%d' % m['unexpected'],
                         '%d' % m['http_5xx'], '%.3f' % m['server_cpu_ms'],
                         _f(m['db_cpu_ms'], '%.3f'),
                         '%.0f%%' % m['wrk_cpu_pct'],
                         _f(ratio_sql), _f(ratio_noop)])
        return _table(['app', 'scenario', 'req/s', 'p50 ms', 'p99 ms',
                       'unexpected status', '5xx', 'server CPU ms/req',
                       'DB CPU ms/req', 'wrk CPU (of a core)',
                       'x one-SQL floor', 'x no-op floor'], rows)

    def _http_keys(self):
        order = ['noop'] + [b.name for b in self.backends]
        apps = ['floor', 'imagetags', 'bare']
        return sorted(self.http, key=lambda k: (
            order.index(k[0]), apps.index(k[1]), k[2] != 'cycle'))

    def rss_table(self):
        rows = []
        for r in self.rss:
            readings = r['readings']
            cells = ['%d req: %.1f MB' % (n, kb / 1024) for n, kb in readings]
            growth = self.rss_growth(r)
            rows.append([bk.LABELS[r['backend']], ', '.join(cells),
                         _f(growth, '%+.2f MB')])
        return _table(['driver', 'RSS of the worker', 'growth between the '
                       'last two readings'], rows)

    @staticmethod
    def rss_growth(r):
        readings = [x for x in r['readings'] if x[0] > 0]
        if len(readings) < 2:
            return None
        return (readings[-1][1] - readings[-2][1]) / 1024

    def sql_samples(self):
        lines = []
        for b in self.backends:
            res = self.inproc.get(b.name)
            if not res or not res.get('statements'):
                continue
            lines.append('### SQL of one request, %s' % b.label)
            for kind, stmts in res['statements'].items():
                n = len([x for x in stmts if not x.startswith('(')])
                lines.append('- %s: %d statement(s); other calls: %s' % (
                    KIND_LABELS[kind], n, ', '.join(
                        x.strip('()') for x in stmts if x.startswith('('))
                    or 'none'))
                stmts = [x for x in stmts if not x.startswith('(')]
                lines += ['  - `%s`' % s for s in stmts]
            lines.append('')
        if not lines:
            return ''
        return '## SQL statements (in process)\n\n' + '\n'.join(lines)

    def targets_table(self):
        rows = []
        sql = [b for b in self.backends if b.is_sql and not b.skip]
        for b in sql:
            it = self.http.get((b.name, 'imagetags', 'cycle'))
            fl = self._floor(b.name, 'cycle')
            if it and fl:
                r = _x(it, fl)
                rows.append(['write cycle req/s vs one-SQL floor', b.label,
                             _ratio(r, it, fl, CYCLE_MIN),
                             '>= %.2f' % CYCLE_MIN,
                             _verdict(r >= CYCLE_MIN)])
        for b in [b for b in self.backends if not b.skip]:
            it = self.http.get((b.name, 'imagetags', 'absent'))
            fl = self._floor(b.name, 'absent')
            f0 = self._floor('noop', 'absent')
            if it and fl:
                r = _x(it, fl)
                rows.append(['DELETE-absent req/s vs one-SQL floor', b.label,
                             _ratio(r, it, fl, ABSENT_MIN),
                             '>= %.2f' % ABSENT_MIN,
                             _verdict(r >= ABSENT_MIN)])
            if it and f0:
                # The memory driver's only floor is the no-op app.
                r = _x_noop(b.name, it, f0)
                rows.append(['DELETE-absent req/s vs no-op floor', b.label,
                             _ratio(r, it, f0,
                                    None if b.is_sql else ABSENT_MIN),
                             '(info)' if b.is_sql else '>= %.2f' % ABSENT_MIN,
                             'info' if b.is_sql else _verdict(
                                 r >= ABSENT_MIN)])
        for b in sql:
            for scenario in ('cycle', 'absent'):
                bare = self.http.get((b.name, 'bare', scenario))
                fl = self._floor(b.name, scenario)
                if bare and fl:
                    rows.append(['bare app (no pipeline) req/s vs one-SQL '
                                 'floor, %s' % SCENARIO_LABELS[scenario],
                                 b.label,
                                 _ratio(_x(bare, fl), bare, fl), '(info)',
                                 'info'])
        for b in sql:
            it = self.http.get((b.name, 'imagetags', 'cycle'))
            if it:
                ok = it['server_cpu_ms'] <= CPU_MAX_MS
                rows.append(['server CPU per write (gunicorn, ms/req)',
                             b.label, '%.3f' % it['server_cpu_ms'],
                             '<= %.1f' % CPU_MAX_MS, _verdict(ok)])
        for b in sql:
            res = self.inproc.get(b.name)
            if res:
                k = res['kinds']
                worst = max(k['put']['sql'], k['delete']['sql'])
                verdict = ('PASS' if worst <= SQL_GOAL else
                           'PASS (over the goal of %d)' % SQL_GOAL
                           if worst <= SQL_MAX else 'FAIL')
                rows.append(['SQL statements per write (PUT / DELETE; '
                             'DELETE-absent, PUT-present)', b.label,
                             '%.2f / %.2f; %.2f, %.2f' % (
                                 k['put']['sql'], k['delete']['sql'],
                                 k['delete_absent']['sql'],
                                 k['put_present']['sql']),
                             '<= %d where possible, never > %d'
                             % (SQL_GOAL, SQL_MAX), verdict])
        for b in sql:
            for scenario in ('cycle', 'absent'):
                it = self.http.get((b.name, 'imagetags', scenario))
                fl = self._floor(b.name, scenario)
                if it and fl and fl['p99_ms']:
                    r = it['p99_ms'] / fl['p99_ms']
                    rows.append(['p99 vs floor p99, %s'
                                 % SCENARIO_LABELS[scenario], b.label,
                                 '%.2fx (%.2f / %.2f ms)' % (
                                     r, it['p99_ms'], fl['p99_ms']),
                                 '<= %.1fx' % P99_MAX,
                                 _verdict(r <= P99_MAX)])
        for r in self.rss:
            growth = self.rss_growth(r)
            counts = [n for n, _ in r['readings'] if n > 0]
            rows.append(['worker RSS growth %s' % ' -> '.join(
                '%dk' % (n // 1000) if n >= 1000 else str(n)
                for n in counts[-2:]), bk.LABELS[r['backend']],
                _f(growth, '%+.2f MB'), '<= %.0f MB' % RSS_MAX_MB,
                _verdict(None if growth is None else growth <= RSS_MAX_MB)])
        for key, m in sorted(self.http.items()):
            if m['http_5xx']:
                rows.append(['5xx answers', '%s %s %s' % key,
                             '%d' % m['http_5xx'], '0', 'FAIL'
                             if key[1] == 'imagetags' else 'info'])
        return _table(['target', 'driver', 'measured', 'target value',
                       'verdict'], rows)
