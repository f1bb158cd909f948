"""The route table and the WSGI app that serves it, as an app or a filter.

A request's path: ``TagsApp.__call__`` matches the raw path against
``ROUTES`` (filter mode hands anything else to the next app), builds the
context (401), answers 404/405, decodes the tag (400), rejects a body (400),
then calls the handler in ``imagetags.handlers``, which checks policy and
calls the driver. Errors become WebOb HTTP exceptions, whose bodies follow
``Accept`` exactly as Glance's do (the driver's outcomes, such as a tag not
found, are made into one only to be rendered, once per kind and Accept).
"""
import logging
import urllib.parse

import routes
import webob.exc

from imagetags import context
from imagetags import db
from imagetags import handlers
from imagetags import policy

LOG = logging.getLogger(__name__)

TAG_PATH = '/{version}/images/{image_id}/tags/{tag}'
ROUTES = {
    TAG_PATH: {'PUT': handlers.add_tag, 'DELETE': handlers.delete_tag},
}
# The version prefixes Glance accepts on the tag path. The other segments
# are greedy: with Routes' default ``[^/]+?`` its closing ``$`` matches
# before a final newline, so ``tags/tag%0A`` was matched as the tag "tag".
_VERSION = r'v2(\.(1[0-8]|[0-9]))?'
_REQUIREMENTS = {'version': _VERSION, 'image_id': '[^/]+', 'tag': '[^/]+'}
_MAX_IMAGE_ID = 36
MAX_ERRORS = 256

NO_CONTENT_HEADERS = (('Content-Type', 'text/html; charset=UTF-8'),
                      ('Content-Length', '0'))


def make_map(declarations):
    """One route per path. Its match carries ``handler_for(method)``, the
    handler or None (405), and ``allow``, the path's methods. (Routes makes
    a default that is not callable into a string.)"""
    mapper = routes.Mapper()
    for path, methods in declarations.items():
        mapper.connect(path, handler_for=methods.get, allow=', '.join(methods),
                       requirements=_REQUIREMENTS)
    mapper.create_regs()
    return mapper


def route(mapper, path, environ):
    """The match of the first of the mapper's routes that matches path, or
    None. Each route matches as Routes' ``Mapper.match`` has it match;
    ``Mapper.match`` first scans a regex of every route (for a long table)
    and walks its routes by prefix: for this table that doubled the cost
    of a match (3.8 against 1.8 us; issue 5)."""
    for candidate in mapper.matchlist:
        match = candidate.match(path, environ)
        if match:
            return match
    return None


class TagsApp:
    """The tag API. With ``next_app`` it is a filter: other paths pass on."""

    def __init__(self, conf, enforcer, driver, next_app=None, notify=None):
        self.conf = conf
        self.enforcer = enforcer
        self.driver = driver
        self.next_app = next_app
        # notify(image, properties) after a change, or None (notifier.make)
        self.notify = notify
        self.mapper = make_map(ROUTES)
        # Rendered error answers: webob renders one (by Accept) in ~60 us.
        self.errors = {}

    def is_admin(self, ctx):
        """The policy's ``context_is_admin``, for ``ctx.is_admin``."""
        return self.enforcer.authorize(policy.IS_ADMIN, {}, ctx)

    def match(self, environ):
        """The route for the raw (latin-1, PEP 3333) path, or None.

        Where the server passes the raw request URI, a last segment holding
        ``%2F`` is the tag, decoded from the URI itself: it contains ``/``,
        which PATH_INFO cannot tell apart (and which middleware such as
        Glance's version negotiation may have collapsed there).
        """
        raw = environ.get('RAW_URI') or environ.get('REQUEST_URI')
        if raw and ('%2f' in raw or '%2F' in raw):
            head, _, segment = urllib.parse.urlsplit(raw).path.rpartition('/')
            if '%2f' in segment.lower():
                head = _unquote(head)
                script = environ.get('SCRIPT_NAME', '')
                if script and head.startswith(script):
                    head = head[len(script):]
                match = route(self.mapper, head + '/x', environ)
                if match is not None:
                    match['tag'] = _unquote(segment)
                    return match
        return route(self.mapper, environ.get('PATH_INFO', ''), environ)

    def __call__(self, environ, start_response):
        match = self.match(environ)
        if match is None and self.next_app is not None:
            return self.next_app(environ, start_response)
        rid = None
        try:
            ctx = context.get(environ, self.conf.allow_anonymous_access,
                              self.is_admin)
            rid = ctx.request_id
            answer = self.handle(environ, match, ctx)
        except webob.exc.HTTPException as e:
            answer = e
        except Exception:
            LOG.exception('Unexpected error in %s %s',
                          environ.get('REQUEST_METHOD'),
                          environ.get('PATH_INFO'))
            answer = webob.exc.HTTPInternalServerError()
        if answer is None:
            start_response('204 No Content', [
                *NO_CONTENT_HEADERS, ('X-Openstack-Request-Id', rid)])
            return []
        return self.error(answer, environ, start_response, rid)

    def error(self, answer, environ, start_response, rid):
        """The error's answer, rendered once per kind of error and Accept
        (at most ``MAX_ERRORS`` kinds are kept), with this request's id.
        ``answer``: a webob HTTP exception, or what ``handle`` returns for
        the driver's outcomes, ``(class, explanation, headers)``, whose
        exception is made only to be rendered (~6 us each)."""
        if isinstance(answer, tuple):
            key = answer
        else:
            rid = getattr(answer, 'request_id', rid)     # 401's
            key = (type(answer), answer.explanation, answer.detail,
                   answer.comment, tuple(answer.headerlist))
        key += (environ.get('HTTP_ACCEPT'), environ['REQUEST_METHOD'])
        rendered = self.errors.get(key)
        if rendered is None:
            if isinstance(answer, tuple):
                kind, explanation, headers = answer
                answer = kind(headers=list(headers), **(
                    {} if explanation is None else
                    {'explanation': explanation}))
            out = []
            body = b''.join(answer(environ, lambda s, h, e=None: out.append(
                (s, h))))
            rendered = out[0][0], out[0][1], body
            if len(self.errors) < MAX_ERRORS:
                self.errors[key] = rendered
        status, headers, body = rendered
        headers = list(headers)     # the server may change the list it gets
        if rid is not None:
            headers.append(('X-Openstack-Request-Id', rid))
        start_response(status, headers)
        return [body]

    def handle(self, environ, match, ctx):
        """The checks after 401, in Glance's order. Returns None (204) or
        the driver's outcome as ``(class, explanation, headers)``; raises
        the other errors as webob HTTP exceptions."""
        if match is None:
            raise webob.exc.HTTPNotFound()
        handler = match['handler_for'](environ['REQUEST_METHOD'])
        if handler is None:
            raise webob.exc.HTTPMethodNotAllowed(
                headers=[('Allow', match['allow'])])
        image_id = _decode(match['image_id'])
        tag = _decode(match['tag'])
        if max(tag, default='') > '\uffff':
            raise webob.exc.HTTPBadRequest(
                explanation="Param values can't contain 4 byte unicode.")
        _reject_body(environ)
        try:
            if not (len(image_id) <= _MAX_IMAGE_ID and image_id.isascii()
                    and image_id.isprintable()):
                raise db.ImageNotFound(image_id)
            handler(self, ctx, image_id, tag)
        except db.ImageNotFound:
            return (webob.exc.HTTPNotFound, 'Image %s not found.' % image_id,
                    ())
        except db.TagNotFound:
            return webob.exc.HTTPNotFound, None, ()
        except db.TagLimitExceeded as e:
            return (webob.exc.HTTPRequestEntityTooLarge,
                    'Image tag limit exceeded for image %s: The limit has '
                    'been exceeded on the number of allowed image tags. '
                    'Attempted: %d, Maximum: %d:'
                    % (image_id, e.attempted, e.maximum), ())
        except db.InvalidTag as e:
            return webob.exc.HTTPBadRequest, str(e), ()
        except db.Unavailable:
            return (webob.exc.HTTPServiceUnavailable,
                    'The database is unavailable or busy; try again later.',
                    (('Retry-After', str(self.conf.imagetags.retry_after)),))


def _unquote(raw):
    """Percent-decoding as a PEP 3333 server does it (latin-1 string)."""
    return urllib.parse.unquote_to_bytes(raw).decode('latin-1')


def _decode(value):
    """UTF-8 decoding of a PEP 3333 (latin-1) path value; 400 if invalid.

    A value holding characters past U+00FF was already decoded by the
    server (e.g. httpx's WSGI transport) and is used as it is.
    """
    try:
        raw = value.encode('latin-1')
    except UnicodeEncodeError:
        return value
    try:
        return raw.decode('utf-8')
    except UnicodeDecodeError:
        raise webob.exc.HTTPBadRequest(
            explanation='The request path is not valid UTF-8.')


def _reject_body(environ):
    """Glance's body_reject: 400 for any body; bad lengths are 400 too."""
    length = environ.get('CONTENT_LENGTH') or '0'
    if not (length.isascii() and length.isdigit()):
        raise webob.exc.HTTPBadRequest(
            explanation='Invalid Content-Length: %r' % length)
    if int(length) > 0 or ('HTTP_TRANSFER_ENCODING' in environ
                           and environ['REQUEST_METHOD'] == 'PUT'):
        raise webob.exc.HTTPBadRequest(
            explanation='A body is not expected with this request.')
