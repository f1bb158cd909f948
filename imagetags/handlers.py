"""The two tag handlers. Checks run in Glance's order (contract section 2)."""
import functools
import logging
import pprint

import webob.exc

from imagetags import notifier
from imagetags import policy

LOG = logging.getLogger(__name__)

MAX_TAG_LENGTH = 255


def add_tag(app, ctx, image_id, tag):
    if len(tag) > MAX_TAG_LENGTH:
        raise webob.exc.HTTPBadRequest(explanation=_too_long(tag))
    _writable(ctx)
    check = functools.partial(policy.authorize, app.enforcer, ctx,
                              policy.ADD_TAG, tag=tag)
    _changed(app, app.driver.add_tag(ctx, image_id, tag,
                                     app.conf.image_tag_quota, check))


def delete_tag(app, ctx, image_id, tag):
    _writable(ctx)
    check = functools.partial(policy.authorize, app.enforcer, ctx,
                              policy.DELETE_TAG, tag=tag)
    _changed(app, app.driver.delete_tag(ctx, image_id, tag, check))


def _changed(app, image):
    """After a change (``image``: as it left it), its notification where one
    is sent. The change is made: a notification that fails is logged."""
    if image and app.notify is not None:
        try:
            app.notify(image, app.driver.image_properties(image['id']))
        except Exception:
            LOG.exception('%s of image %s not sent', notifier.EVENT,
                          image['id'])


def _writable(ctx):
    if ctx.read_only:
        raise webob.exc.HTTPForbidden('Read-only access')


def _too_long(tag):
    """Glance's jsonschema message for a tag over 255 characters."""
    return ("Provided object does not match schema 'image': %r is too long\n"
            "\nFailed validating 'maxLength' in schema['properties']['tags']"
            "['items']:\n    {'type': 'string', 'maxLength': 255}\n\n"
            "On instance['tags'][0]:\n    %s"
            % (tag, pprint.pformat(tag, width=72).replace('\n', '\n    ')))
