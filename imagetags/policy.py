"""Policy rules (Glance-compatible names and defaults) and their use.

``modify_image``/``get_image`` keep Glance's names and check strings, so an
operator's Glance policy.yaml works unchanged; ``add_image_tag`` and
``delete_image_tag`` let tag changes alone be delegated or restricted.
"""
import logging

from oslo_config import cfg
from oslo_policy import policy
import webob.exc

LOG = logging.getLogger(__name__)

ADMIN = 'role:admin'
ADD_TAG = 'add_image_tag'
DELETE_TAG = 'delete_image_tag'
GET_IMAGE = 'get_image'
MODIFY_IMAGE = 'modify_image'
IS_ADMIN = 'context_is_admin'

FORBIDDEN_MSG = 'You are not authorized to complete modify_image action.'
# Glance's database layer refuses, whatever the policy says, changes to an
# image without an owner or by a caller without a project (unless admin).
NOT_MUTABLE_MSG = {ADD_TAG: 'Not allowed to update tags for image %s.',
                   DELETE_TAG: 'Not allowed to delete tags for image %s.'}
_TAG_PATH = '/v2/images/{image_id}/tags/{tag}'


def list_rules():
    return [
        policy.RuleDefault(
            IS_ADMIN, ADMIN,
            description='Defines the rule for the is_admin:True check.'),
        policy.RuleDefault(
            'default', '',
            description='Defines the default rule used for policies that '
                        'historically had an empty policy in the supplied '
                        'policy.json file.'),
        policy.DocumentedRuleDefault(
            GET_IMAGE,
            'rule:context_is_admin or (role:reader and '
            '(project_id:%(project_id)s or project_id:%(member_id)s or '
            "'community':%(visibility)s or 'public':%(visibility)s or "
            "'shared':%(visibility)s))",
            'Get specified image. A caller who fails it is told 404, not '
            '403, when a tag change is refused.',
            [{'path': '/v2/images/{image_id}', 'method': 'GET'}],
            scope_types=['project']),
        policy.DocumentedRuleDefault(
            MODIFY_IMAGE,
            'rule:context_is_admin or (role:member and '
            'project_id:%(project_id)s)',
            'Updates given image.',
            [{'path': '/v2/images/{image_id}', 'method': 'PATCH'}],
            scope_types=['project']),
        policy.DocumentedRuleDefault(
            ADD_TAG, 'rule:modify_image',
            'Add a tag to an image. The target also carries "tag".',
            [{'path': _TAG_PATH, 'method': 'PUT'}],
            scope_types=['project']),
        policy.DocumentedRuleDefault(
            DELETE_TAG, 'rule:modify_image',
            'Delete a tag from an image. The target also carries "tag".',
            [{'path': _TAG_PATH, 'method': 'DELETE'}],
            scope_types=['project']),
    ]


class Enforcer(policy.Enforcer):
    """Keeps the rules in force when a changed policy file cannot be parsed.

    oslo.policy re-reads a changed file on the next check. One that it cannot
    parse (bad YAML, not a mapping, a rule that is not a string) made that
    one check raise (a 500), and the previous rules stayed in force after it.
    Here the error is logged instead and the previous rules stay in force
    from the first request on, until the file is changed again: a broken
    edit neither opens the policy nor fails requests. The first load, at
    start-up, still raises.
    """

    loaded = False

    def load_rules(self, force_reload=False):
        if not self.loaded:
            super().load_rules(force_reload)
            self.loaded = True
            return
        try:
            super().load_rules(force_reload)
        except Exception:
            LOG.exception('The policy file %s cannot be parsed; the rules '
                          'loaded before stay in force until it is fixed.',
                          self.policy_path)


def make_enforcer(conf):
    """An enforcer with the in-code defaults and the operator's file loaded.

    Loading here makes a policy file that cannot be parsed fail at start-up.
    """
    enforcer = Enforcer(conf)
    enforcer.register_defaults(list_rules())
    try:
        enforcer.load_rules()
    except Exception as e:
        raise ValueError('The policy file %s cannot be parsed: %s: %s' % (
            enforcer.policy_path or conf.oslo_policy.policy_file,
            type(e).__name__, e)) from e
    return enforcer


def get_enforcer():
    """For the oslopolicy-* command line tools only."""
    from imagetags import conf as it_conf
    conf = cfg.ConfigOpts()
    it_conf.register_opts(conf)
    conf([], project='imagetags')
    return make_enforcer(conf)


def target(image, tag):
    """Glance's ImageTarget keys for an image record, plus the tag."""
    t = dict(image)
    t.update(image_id=image['id'], project_id=image['owner'],
             member_id=image['member'], tag=tag)
    return t


def authorize(enforcer, ctx, action, image, tag):
    """Raise 403, or a bare 404 when the caller may not even read the image."""
    t = target(image, tag)
    if enforcer.authorize(action, t, ctx):
        if not ctx.is_admin and None in (image['owner'], ctx.project_id):
            raise webob.exc.HTTPForbidden(
                explanation=NOT_MUTABLE_MSG[action] % image['id'])
        return
    if enforcer.authorize(GET_IMAGE, t, ctx):
        raise webob.exc.HTTPForbidden(explanation=FORBIDDEN_MSG)
    raise webob.exc.HTTPNotFound()
