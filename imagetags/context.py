"""The request context: built from the environ by oslo.context.

``get(environ, ...)`` is the one place a request's identity context is made,
in app and filter mode alike.
"""
from oslo_context import context
import webob.exc

from imagetags import request_id as it_request_id

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
    return environ.get('openstack.request_id') or it_request_id.generate()


class RequestContext(context.RequestContext):
    """oslo.context's, whose ``is_admin`` is ``_admin_check(ctx)`` (set by
    ``get``), called when ``is_admin`` is first read (most requests never
    need it)."""

    _admin_check = None

    def check_is_admin(self):
        return bool(self._admin_check and self._admin_check(self))

    def to_policy_values(self):
        """oslo.context's values, as the plain dict inside its mapping:
        oslo.policy copies them item by item on every check, and through the
        mapping (which warns about deprecated keys; this context has none)
        that copy costs more than the check of a rule. Should oslo.context
        stop keeping that dict, its mapping is used as it is (a test says
        so)."""
        values = super().to_policy_values()
        return getattr(values, '_data', values)


def get(environ, allow_anonymous, admin_check=None):
    """The context of this request; raises 401 without a confirmed identity.
    ``admin_check(ctx)``: the policy's answer to "is this an admin"."""
    ctx = environ.get(ENV_KEY)
    if ctx is not None:
        return ctx
    rid = request_id(environ)
    if environ.get('HTTP_X_IDENTITY_STATUS') == 'Confirmed':
        ctx = RequestContext.from_environ(environ, request_id=rid,
                                          is_admin=None)
        ctx._admin_check = admin_check
        ctx.roles = [r.lower() for r in ctx.roles]
    elif allow_anonymous:
        ctx = RequestContext(request_id=rid, read_only=True, is_admin=False)
    else:
        exc = webob.exc.HTTPUnauthorized()
        exc.request_id = rid    # no context to carry it
        raise exc
    environ[ENV_KEY] = ctx
    return ctx


class ContextMiddleware:
    """The ``context`` filter: the request's log context from the start.

    Placed right after ``request_id``, it makes every log line of the
    request, keystonemiddleware's included, carry this request's id, never
    the previous request's (oslo.log reads oslo.context's thread-local
    context, and one thread serves many requests). The identity context,
    and its 401, are built by imagetags itself once auth has run.
    """

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        context.RequestContext(request_id=request_id(environ))
        return self.app(environ, start_response)
