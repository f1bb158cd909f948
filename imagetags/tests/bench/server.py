"""gunicorn on 127.0.0.1, and what /proc says about its processes."""
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

CLK_TCK = os.sysconf('SC_CLK_TCK')
PAGE_KB = os.sysconf('SC_PAGE_SIZE') // 1024


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _stat(pid):
    """(comm, ppid, utime+stime, cutime+cstime) in clock ticks, or None."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            data = f.read()
    except OSError:
        return None
    comm = data[data.index('(') + 1:data.rindex(')')]
    fields = data[data.rindex(')') + 2:].split()
    # fields[0] is field 3 (state): utime is field 14, cstime field 17.
    return (comm, int(fields[1]), int(fields[11]) + int(fields[12]),
            int(fields[13]) + int(fields[14]))


def _all_pids():
    return [int(p) for p in os.listdir('/proc') if p.isdigit()]


def children(pid):
    out = []
    for p in _all_pids():
        st = _stat(p)
        if st is not None and st[1] == pid:
            out.append(p)
    return out


def cpu_seconds(pids):
    """CPU time of these processes and of their reaped children."""
    total = 0
    for p in pids:
        st = _stat(p)
        if st is not None:
            total += st[2] + st[3]
    return total / CLK_TCK


def pids_named(names):
    if not names:
        return []
    return [p for p in _all_pids()
            if (_stat(p) or ('',))[0] in names]


def rss_kb(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return None


class Gunicorn:
    """``gunicorn --workers N`` (sync) serving ``app`` on a free port."""

    def __init__(self, app, workers, env, log_path, timeout=120):
        self.app = app
        self.workers = workers
        self.env = env
        self.log_path = log_path
        self.timeout = timeout
        self.port = free_port()
        self.url = 'http://127.0.0.1:%d' % self.port
        self.proc = None

    def __enter__(self):
        self.log = open(self.log_path, 'ab')
        cmd = [sys.executable, '-m', 'gunicorn', '--workers',
               str(self.workers), '--worker-class', 'sync', '--bind',
               '127.0.0.1:%d' % self.port, '--backlog', '2048',
               '--timeout', '60', '--graceful-timeout', '5',
               '--log-level', 'warning', self.app]
        self.proc = subprocess.Popen(cmd, env=dict(os.environ, **self.env),
                                     stdout=self.log, stderr=self.log,
                                     stdin=subprocess.DEVNULL)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def _wait_ready(self):
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError('gunicorn (%s) exited with %s; see %s'
                                   % (self.app, self.proc.returncode,
                                      self.log_path))
            if len(self.worker_pids()) >= self.workers:
                try:
                    # Any answer means a worker has built the app.
                    urllib.request.urlopen(self.url + '/bench-ready',
                                           timeout=30).close()
                    return
                except urllib.error.HTTPError:
                    return
                except (urllib.error.URLError, OSError):
                    pass
            time.sleep(0.2)
        raise RuntimeError('gunicorn (%s) not ready after %d s; see %s'
                           % (self.app, self.timeout, self.log_path))

    def worker_pids(self):
        return children(self.proc.pid)

    def cpu_seconds(self):
        return cpu_seconds([self.proc.pid] + self.worker_pids())

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if getattr(self, 'log', None) is not None:
            self.log.close()
            self.log = None
