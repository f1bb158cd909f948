"""Issue 5's benchmark: ``tox -e bench``, ``python -m imagetags.tests.bench``.

One run measures, side by side:

- in process: microseconds and SQL statements per ``PUT``, ``DELETE``,
  ``DELETE`` of an absent tag and ``PUT`` of a present tag, through the whole
  ``noauth`` Paste pipeline, for each driver (``inproc``);
- over HTTP on 127.0.0.1: gunicorn (sync workers) serving imagetags and the
  two floors (a no-op app, a one-SQL-statement app) under wrk (``http``);
- the RSS of one worker after 10,000 and 100,000 requests (``http``);

and prints one markdown report with the issue's targets next to the measured
ratios (``report``). Settings come from ``BENCH_*`` environment variables
(``settings``). No module here is named ``test_*``: stestr never runs them.
"""
