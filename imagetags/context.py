"""The request context: built from the environ by oslo.context, once.

``get(environ, ...)`` is the one place a context is made, whether the
``context`` filter runs first (our own pipeline) or not (imagetags as a filter
behind another service's context middleware).
"""
from oslo_context import context
import webob.exc

ENV_KEY = 'imagetags.context'
_MAX_REQUEST_ID = 64


def request_id(environ):
    """The client's request id as Glance echoes it, or the generated one.

    A client id is used when it is 1 to 64 visible ASCII characters; anything
    else (Glance answers 500 past 64) is replaced by a fresh id.
    """
    rid = environ.get('HTTP_X_OPENSTACK_REQUEST_ID', '')
    if 0 < len(rid) <= _MAX_REQUEST_ID and rid.isascii() and (
            rid.isprintable() and ' ' not in rid):
        return rid if rid.startswith('req-') else 'req-' + rid
    return environ.get('openstack.request_id') or context.generate_request_id()


def get(environ, allow_anonymous):
    """The context of this request; raises 401 without a confirmed identity."""
    ctx = environ.get(ENV_KEY)
    if ctx is not None:
        return ctx
    rid = request_id(environ)
    if environ.get('HTTP_X_IDENTITY_STATUS') == 'Confirmed':
        ctx = context.RequestContext.from_environ(environ, request_id=rid)
        ctx.roles = [r.lower() for r in ctx.roles]
    elif allow_anonymous:
        ctx = context.RequestContext(request_id=rid, read_only=True,
                                     is_admin=False)
    else:
        exc = webob.exc.HTTPUnauthorized()
        exc.headers['X-Openstack-Request-Id'] = rid
        raise exc
    environ[ENV_KEY] = ctx
    return ctx


class ContextMiddleware:
    """The ``context`` filter: 401 (or anonymous) before anything else."""

    def __init__(self, app, allow_anonymous):
        self.app = app
        self.allow_anonymous = allow_anonymous

    def __call__(self, environ, start_response):
        try:
            get(environ, self.allow_anonymous)
        except webob.exc.HTTPUnauthorized as exc:
            return exc(environ, start_response)
        return self.app(environ, start_response)
