"""The load generator: wrk with a Lua script, one connection per wrk thread.

With as many wrk threads as connections, each connection has a Lua state of
its own, so it owns one image and runs its requests strictly in order:

- ``cycle``: ``PUT t-<run>-<conn>-<k>`` then ``DELETE`` of the same tag,
  k = 1, 2, ... (distinct tags, every DELETE finds its tag; the cycle
  advances on each response, so each connection's order is strict);
- ``absent``: ``DELETE`` of a tag that is not there (404).

With a ``limit`` each connection stops after that many responses (and the
caller interrupts wrk once all have, see ``run_wrk``). The script's ``done``
prints one ``BENCH_JSON`` line: requests, duration, latency percentiles (us),
socket errors and every HTTP status seen.
"""
import json
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import time

from imagetags.tests.bench import backends

LUA = r'''
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("conn", counter)
  table.insert(threads, thread)
end

function init(args)
  mode = args[1]
  run = args[2]
  local images = {}
  for s in string.gmatch(args[3], "[^,]+") do images[#images + 1] = s end
  limit = tonumber(args[4]) or 0
  base = "/v2/images/" .. images[((conn - 1) % #images) + 1] .. "/tags/"
  prefix = base .. "t-" .. run .. "-" .. conn .. "-"
  absent = base .. "absent-" .. run
  k = 1
  put = true
  seen = 0
  statuses = {}
-- HEADERS --
end

function request()
  -- No state changes here: wrk calls request() once more than it sends
  -- (to check the script), so the cycle advances in response().
  if mode == "absent" then
    return wrk.format("DELETE", absent)
  elseif put then
    return wrk.format("PUT", prefix .. k)
  end
  return wrk.format("DELETE", prefix .. k)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if put then
    put = false
  else
    put = true
    k = k + 1
  end
  seen = seen + 1
  if limit > 0 and seen >= limit then
    io.write("BENCH_STOPPED " .. conn .. "\n")
    io.flush()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local codes = {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    if s then
      for code, n in pairs(s) do codes[code] = (codes[code] or 0) + n end
    end
  end
  local parts = {}
  for code, n in pairs(codes) do
    parts[#parts + 1] = string.format('"%d": %d', code, n)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "p50": %d, ' ..
    '"p90": %d, "p99": %d, "max": %d, "mean": %.1f, "connect": %d, ' ..
    '"read": %d, "write": %d, "timeout": %d, "status_errors": %d, ' ..
    '"statuses": {%s}}\n',
    summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, e.connect, e.read, e.write, e.timeout, e.status,
    table.concat(parts, ", ")))
end
'''


def write_script(workdir):
    headers = '\n'.join('  wrk.headers["%s"] = "%s"' % kv
                        for kv in backends.IDENTITY.items())
    path = os.path.join(workdir, 'bench.lua')
    with open(path, 'w') as f:
        f.write(LUA.replace('-- HEADERS --', headers))
    return path


def ensure_wrk(settings):
    """(wrk, None), installing Debian's package if allowed; or (None, why)."""
    found = shutil.which(settings.wrk)
    if found:
        return found, None
    if not settings.install_wrk:
        return None, ('wrk not found and BENCH_INSTALL_WRK=0: install it '
                      '("apt-get install wrk") or set BENCH_WRK')
    if os.geteuid() != 0 or not shutil.which('apt-get'):
        return None, ('wrk not found, and apt-get is not usable here (needs '
                      'root on Debian): install wrk or set BENCH_WRK')
    print('wrk not found: installing Debian\'s package (apt-get) ...',
          flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
    for cmd in (['apt-get', 'update'],
                ['apt-get', 'install', '-y', '--no-install-recommends',
                 'wrk']):
        try:
            out = subprocess.run(cmd, env=env, capture_output=True,
                                 text=True, timeout=300)
        except subprocess.TimeoutExpired:
            return None, '%s timed out after 300 s' % ' '.join(cmd)
        if out.returncode != 0:
            return None, '%s failed: %s' % (
                ' '.join(cmd), (out.stderr or out.stdout).strip()[-300:])
    found = shutil.which(settings.wrk)
    return (found, None) if found else (None, 'wrk still not on PATH after '
                                        'apt-get install wrk')


def run_wrk(wrk, script, url, mode, images, run_id, connections, duration,
            limit=0, timeout=None):
    """Run wrk; return its BENCH_JSON result plus ``wrk_cpu_s``.

    With ``limit`` (responses per connection) ``duration`` is only the upper
    bound: wrk is interrupted (SIGINT, after which it reports as usual) as
    soon as every connection has stopped, or at ``timeout``.
    """
    cmd = [wrk, '-t%d' % connections, '-c%d' % connections,
           '-d%ds' % max(1, round(duration)), '--timeout', '10s',
           '-s', script, url, '--', mode, run_id, ','.join(images),
           str(limit)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.NamedTemporaryFile('w', suffix='.wrk') as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + (timeout or duration + 60)
        interrupted = False
        while proc.poll() is None:
            time.sleep(0.05)
            if not interrupted:
                stopped = limit and _read(out).count('BENCH_STOPPED')
                if ((limit and stopped >= connections)
                        or time.monotonic() > deadline):
                    # wrk sleeps for its whole duration even when every
                    # thread has stopped; SIGINT makes it report now.
                    proc.send_signal(signal.SIGINT)
                    interrupted = True
                    deadline = time.monotonic() + 30
            elif time.monotonic() > deadline:
                proc.kill()
        lines = _read(out).splitlines()
        stopped = sum(1 for line in lines if line.startswith('BENCH_STOPPED'))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = None
    for line in lines:
        if line.startswith('BENCH_JSON '):
            result = json.loads(line[len('BENCH_JSON '):])
    if result is None:
        raise RuntimeError('wrk gave no result (exit %s):\n%s'
                           % (proc.returncode, '\n'.join(lines[-20:])))
    result['statuses'] = {int(k): v for k, v in result['statuses'].items()}
    result['wrk_cpu_s'] = (after.ru_utime + after.ru_stime
                           - before.ru_utime - before.ru_stime)
    result['stopped_early'] = bool(limit) and stopped < connections
    return result


def _read(f):
    with open(f.name, errors='replace') as r:
        return r.read()
