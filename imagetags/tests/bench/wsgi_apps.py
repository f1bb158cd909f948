"""What gunicorn serves in the benchmark, one factory per app.

- ``make_imagetags()``: imagetags itself through its production entry point
  (``imagetags.wsgi.load_app``: the ``noauth`` pipeline of a copy of
  ``etc/imagetags/api-paste.ini`` and the bench's ``imagetags.conf``), from
  ``BENCH_CONFIG_DIR``. With the memory driver each worker creates the images
  named in ``BENCH_SEED_IMAGES`` in its own memory.
- ``make_noop()``: the first floor, a WSGI app that answers 204.
- ``make_one_sql()``: the second floor, a WSGI app that runs one SQL statement
  and its commit per request on ``BENCH_FLOOR_URL``, on a DBAPI connection of
  its own (one per worker): ``PUT`` inserts the row named by the path,
  ``DELETE`` deletes it (404 when there was none, as imagetags answers).
- ``make_bare()``: not a floor but a yardstick: imagetags' own SQL driver,
  loaded as ``make_imagetags()`` loads it, behind a bare WSGI function
  instead of the Paste pipeline and its libraries (webob, Routes,
  oslo.context, oslo.policy, the request id and context filters). The same
  statements on the same pooled connections and the same answers (a request
  id, Glance's 404 body rendered by imagetags); its policy is the default
  one's answer for the bench's caller: the owner may. What imagetags costs
  more than it is what its pipeline costs.

All are built in the worker (no ``--preload``), so no database connection
crosses a fork.
"""
import os

_NO_CONTENT = [('Content-Type', 'text/html; charset=UTF-8'),
               ('Content-Length', '0')]


def make_imagetags():
    from imagetags.tests.bench import backends
    from imagetags import wsgi
    app = wsgi.load_app(os.environ['BENCH_CONFIG_DIR'], backends.PIPELINE)
    seed = [i for i in os.environ.get('BENCH_SEED_IMAGES', '').split(',')
            if i]
    if seed:
        driver = backends.find_tags_app(app).driver
        for image_id in seed:
            driver.create_image(image_id, backends.OWNER, 'private')
    return app


def make_bare():
    import re
    import types

    import webob.exc

    from imagetags import db
    from imagetags import request_id
    from imagetags.tests.bench import backends

    tags_app = backends.find_tags_app(make_imagetags())
    driver, quota = tags_app.driver, tags_app.conf.image_tag_quota
    path = re.compile('/v2/images/([^/]+)/tags/([^/]+)$')

    def bare(environ, start_response):
        rid = request_id.generate()
        match = path.match(environ['PATH_INFO'])
        if match is None:       # the bench's readiness probe
            start_response('404 Not Found', _NO_CONTENT)
            return []
        image_id, tag = match.groups()
        ctx = types.SimpleNamespace(
            project_id=environ.get('HTTP_X_PROJECT_ID'), is_admin=False)

        def check(image):
            if image['owner'] != ctx.project_id:
                raise db.ImageNotFound(image_id)
        try:
            if environ['REQUEST_METHOD'] == 'PUT':
                driver.add_tag(ctx, image_id, tag, quota, check)
            else:
                driver.delete_tag(ctx, image_id, tag, check)
        except db.TagNotFound:
            return tags_app.error((webob.exc.HTTPNotFound, None, ()),
                                  environ, start_response, rid)
        except db.ImageNotFound:
            return tags_app.error((webob.exc.HTTPNotFound, 'Image %s not '
                                   'found.' % image_id, ()), environ,
                                  start_response, rid)
        start_response('204 No Content', _NO_CONTENT + [
            ('X-Openstack-Request-Id', rid)])
        return []
    return bare


def make_noop():
    def noop(environ, start_response):
        start_response('204 No Content', _NO_CONTENT)
        return []
    return noop


def make_one_sql():
    import sqlalchemy as sa
    from imagetags.tests.bench import backends

    engine = sa.create_engine(os.environ['BENCH_FLOOR_URL'],
                              poolclass=sa.pool.NullPool)
    mark = {'qmark': '?', 'numeric': ':1', 'named': ':k'}.get(
        engine.dialect.paramstyle, '%s')
    insert = 'INSERT INTO %s (k) VALUES (%s)' % (backends.FLOOR_TABLE, mark)
    delete = 'DELETE FROM %s WHERE k = %s' % (backends.FLOOR_TABLE, mark)
    state = {}

    def one_sql(environ, start_response):
        conn = state.get('conn')
        if conn is None:
            conn = state['conn'] = engine.raw_connection()
        # The key: image id and tag, from the same paths imagetags serves.
        key = environ.get('PATH_INFO', '')[-120:]
        method = environ['REQUEST_METHOD']
        cur = conn.cursor()
        try:
            cur.execute(insert if method == 'PUT' else delete, (key,))
            count = cur.rowcount
            conn.commit()
        except Exception:
            conn.rollback()
            start_response('500 Internal Server Error', _NO_CONTENT)
            return []
        finally:
            cur.close()
        if method == 'DELETE' and count < 1:
            start_response('404 Not Found', _NO_CONTENT)
        else:
            start_response('204 No Content', _NO_CONTENT)
        return []
    return one_sql
