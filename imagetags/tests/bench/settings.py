"""Benchmark settings, all from ``BENCH_*`` environment variables.

``BENCH_QUICK=1`` is a smoke test (short scenarios, small counts); any
variable set explicitly wins over both the full and the quick defaults.

=========================  ==================================  ============
variable                   meaning                             full / quick
=========================  ==================================  ============
BENCH_DRIVERS              drivers to run, comma separated     memory,sqlite,
                                                               mysql,
                                                               postgresql
BENCH_DURATION             seconds per HTTP scenario and       10 / 2
                           repetition
BENCH_SLICE                seconds per slice: the servers of   2 / 1
                           a group take turns (httpbench)
BENCH_WARMUP               seconds of warm-up per server       2 / 0.5
BENCH_REPEAT               repetitions (more slices; medians   1 / 1
                           reported)
BENCH_CONNECTIONS          wrk connections (one image each)    16
BENCH_WORKERS              gunicorn sync workers               4
BENCH_INPROC_N             in-process requests per kind        1000 / 200
BENCH_RSS_COUNTS           requests before each RSS reading    10000,100000
                                                               / 1000,5000
BENCH_RSS_DRIVERS          drivers whose worker RSS is taken   first SQL
                           ("all", "none" or a list)           driver
                                                               reachable
BENCH_RSS_TIMEOUT          seconds allowed for the RSS runs    900 / 120
BENCH_HTTP                 0: in-process part only             1
BENCH_INPROC               0: HTTP part only                   1
BENCH_INSTALL_WRK          0: never apt-get install wrk        1
BENCH_WRK                  the wrk binary                      wrk on PATH
BENCH_OUTPUT               report file                         ./bench-
                                                               results.md
BENCH_WORKDIR              scratch directory (kept if set)     a temp dir
BENCH_MYSQL_URL            MariaDB server (a database is       IMAGETAGS_TEST
                           created and dropped there)          _MYSQL_URL or
                                                               root@127...
BENCH_PG_URL               PostgreSQL server                   IMAGETAGS_TEST
                                                               _PG_URL or
                                                               postgres@127..
=========================  ==================================  ============
"""
import dataclasses
import os

ALL_DRIVERS = ('memory', 'sqlite', 'mysql', 'postgresql')
SQL_DRIVERS = ('sqlite', 'mysql', 'postgresql')


def _env(name, full, quick, is_quick, cast=str):
    value = os.environ.get(name)
    if value is None or value == '':
        return quick if is_quick else full
    return cast(value)


def _list(value):
    if isinstance(value, (list, tuple)):
        return list(value)
    return [v.strip() for v in value.split(',') if v.strip()]


def _bool(value):
    return str(value).lower() not in ('0', 'false', 'no', 'off', '')


@dataclasses.dataclass
class Settings:
    quick: bool
    drivers: list
    duration: float
    slice: float
    warmup: float
    repeat: int
    connections: int
    workers: int
    inproc_n: int
    rss_counts: list
    rss_drivers: str
    rss_timeout: float
    http: bool
    inproc: bool
    install_wrk: bool
    wrk: str
    output: str
    workdir: str
    mysql_url: str
    pg_url: str

    def describe(self):
        return ('quick=%s drivers=%s duration=%gs slice=%gs warmup=%gs '
                'repeat=%d connections=%d workers=%d inproc_n=%d '
                'rss_counts=%s rss_drivers=%s' % (
                    self.quick, ','.join(self.drivers), self.duration,
                    self.slice, self.warmup, self.repeat, self.connections,
                    self.workers, self.inproc_n,
                    ','.join(map(str, self.rss_counts)), self.rss_drivers))


def load():
    q = _bool(os.environ.get('BENCH_QUICK', '0'))
    drivers = _list(_env('BENCH_DRIVERS', ','.join(ALL_DRIVERS),
                         ','.join(ALL_DRIVERS), q))
    unknown = [d for d in drivers if d not in ALL_DRIVERS]
    if unknown:
        raise SystemExit('BENCH_DRIVERS: unknown driver(s) %s; choose from %s'
                         % (', '.join(unknown), ', '.join(ALL_DRIVERS)))
    return Settings(
        quick=q,
        drivers=drivers,
        duration=_env('BENCH_DURATION', 10.0, 2.0, q, float),
        slice=max(1.0, _env('BENCH_SLICE', 2.0, 1.0, q, float)),
        warmup=_env('BENCH_WARMUP', 2.0, 0.5, q, float),
        repeat=max(1, _env('BENCH_REPEAT', 1, 1, q, int)),
        connections=_env('BENCH_CONNECTIONS', 16, 16, q, int),
        workers=_env('BENCH_WORKERS', 4, 4, q, int),
        inproc_n=_env('BENCH_INPROC_N', 1000, 200, q, int),
        rss_counts=[int(c) for c in _list(
            _env('BENCH_RSS_COUNTS', '10000,100000', '1000,5000', q))],
        rss_drivers=_env('BENCH_RSS_DRIVERS', 'auto', 'auto', q),
        rss_timeout=_env('BENCH_RSS_TIMEOUT', 900.0, 120.0, q, float),
        http=_bool(_env('BENCH_HTTP', '1', '1', q)),
        inproc=_bool(_env('BENCH_INPROC', '1', '1', q)),
        install_wrk=_bool(_env('BENCH_INSTALL_WRK', '1', '1', q)),
        wrk=_env('BENCH_WRK', 'wrk', 'wrk', q),
        output=os.path.abspath(_env('BENCH_OUTPUT', 'bench-results.md',
                                    'bench-results.md', q)),
        workdir=os.environ.get('BENCH_WORKDIR', ''),
        mysql_url=os.environ.get('BENCH_MYSQL_URL') or os.environ.get(
            'IMAGETAGS_TEST_MYSQL_URL',
            'mysql+pymysql://root@127.0.0.1:3306/test'),
        pg_url=os.environ.get('BENCH_PG_URL') or os.environ.get(
            'IMAGETAGS_TEST_PG_URL',
            'postgresql+psycopg2://postgres@127.0.0.1:5432/test'),
    )
