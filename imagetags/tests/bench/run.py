"""``python -m imagetags.tests.bench [all|inproc|http|profile]``.

``all`` (the default) runs everything and writes the report to
``BENCH_OUTPUT``; ``inproc`` and ``http`` run one part; ``profile`` profiles
the in-process path (see ``profiling``). Settings: ``settings``.
"""
import datetime
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

from imagetags.tests.bench import backends as bk
from imagetags.tests.bench import httpbench
from imagetags.tests.bench import inproc
from imagetags.tests.bench import load
from imagetags.tests.bench import report
from imagetags.tests.bench import settings as bench_settings


def _git_rev():
    try:
        return subprocess.run(
            ['git', '-C', bk.ROOT, 'describe', '--always', '--dirty'],
            capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:  # noqa: only for the header
        return 'unknown'


def _header(s):
    return '\n'.join([
        '- date: %s' % datetime.datetime.now().isoformat(timespec='seconds'),
        '- commit: %s' % _git_rev(),
        '- machine: %d cores, Python %s, %s' % (
            os.cpu_count(), platform.python_version(), platform.platform()),
        '- load average at start: %.2f %.2f %.2f' % os.getloadavg(),
        '- settings: %s' % s.describe(),
    ])


def _rss_backends(s, backend_list):
    live = [b for b in backend_list if not b.skip]
    choice = s.rss_drivers.strip().lower()
    if choice == 'none':
        return []
    if choice == 'all':
        return live
    if choice == 'auto':
        for name in ('postgresql', 'mysql', 'sqlite', 'memory'):
            for b in live:
                if b.name == name:
                    return [b]
        return []
    wanted = [n.strip() for n in choice.split(',')]
    return [b for b in live if b.name in wanted]


def _keep_log(path, output, notes):
    """gunicorn's log (warnings and errors only) next to the report."""
    if os.path.exists(path) and os.path.getsize(path):
        kept = output + '.gunicorn.log'
        os.makedirs(os.path.dirname(kept), exist_ok=True)
        shutil.copy(path, kept)
        notes.append('gunicorn logged warnings or errors: see %s' % kept)


def main(argv=()):
    argv = list(argv)
    what = argv[0] if argv else 'all'
    if what == 'profile':
        from imagetags.tests.bench import profiling
        return profiling.main(argv[1:])
    if what not in ('all', 'inproc', 'http'):
        print(__doc__)
        return 2
    s = bench_settings.load()
    workdir = s.workdir or tempfile.mkdtemp(prefix='imagetags-bench-')
    os.makedirs(workdir, exist_ok=True)
    started = time.monotonic()
    print('imagetags bench: %s\nwork directory: %s' % (s.describe(), workdir),
          flush=True)
    header = _header(s)
    backend_list = [bk.Backend(name, s, workdir) for name in s.drivers]
    notes = []
    inproc_results, http_results, rss_results = {}, {}, []
    try:
        for b in backend_list:
            if not b.prepare():
                print('SKIP %s' % b.skip, flush=True)
        live = [b for b in backend_list if not b.skip]

        if s.inproc and what in ('all', 'inproc'):
            print('In process (%d requests of each kind per driver)'
                  % s.inproc_n, flush=True)
            for b in live:
                try:
                    res = inproc.run(b, s)
                except Exception as e:  # noqa: report it, go on
                    notes.append('in-process run on %s failed: %s: %s'
                                 % (b.label, type(e).__name__, e))
                    print('FAILED %s' % notes[-1], flush=True)
                    continue
                inproc_results[b.name] = res
                print('  %-10s ' % b.name + '  '.join(
                    '%s %.0f us/%.1f sql' % (k, r['p50_us'], r['sql'])
                    for k, r in res['kinds'].items()), flush=True)

        if s.http and what in ('all', 'http'):
            wrk, why = load.ensure_wrk(s)
            if wrk is None:
                notes.append('HTTP part skipped: ' + why)
                print('SKIP HTTP part: %s' % why, flush=True)
            else:
                runner = httpbench.Runner(s, workdir, wrk)
                try:
                    http_results = runner.run(live)
                    for b in _rss_backends(s, live):
                        print('Worker RSS on %s' % b.label, flush=True)
                        rss_results.append(runner.rss(b))
                except Exception as e:  # noqa: report what was measured
                    notes.append('HTTP part stopped: %s: %s'
                                 % (type(e).__name__, e))
                    print('FAILED %s' % notes[-1], flush=True)
                    http_results = http_results or runner.medians()
                notes.extend(runner.notes)
                _keep_log(runner.log_path, s.output, notes)
    finally:
        for b in backend_list:
            b.cleanup()
        if not s.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    notes.append('run time: %.0f s' % (time.monotonic() - started))
    text = report.Report(s, header, backend_list, inproc_results,
                         http_results, rss_results, notes).render()
    os.makedirs(os.path.dirname(s.output), exist_ok=True)
    with open(s.output, 'w') as f:
        f.write(text)
    print('\n' + text)
    print('(written to %s)' % s.output)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
