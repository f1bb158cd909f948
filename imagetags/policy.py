"""Policy rules (Glance-compatible names and defaults) and their use.

``modify_image``/``get_image`` keep Glance's names and check strings, so an
operator's Glance policy.yaml works unchanged; ``add_image_tag`` and
``delete_image_tag`` let tag changes alone be delegated or restricted.
"""
import logging
import time

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
    """Never runs on rules it cannot trust.

    A policy file that cannot be parsed, or in which the rules imagetags
    enforces reach a rule that does not exist (oslo.policy would fall back to
    ``default``, which allows everything) or a cycle, fails at start-up with
    a ``ValueError`` naming the file. Other rules of the file (a Glance
    policy.yaml has many) are not imagetags' business. When a running
    process re-reads a changed file (oslo.policy does on the next check)
    that is broken in the same ways, the error is logged and the rules
    loaded before stay in force until the file is changed again: a broken
    edit neither opens the policy nor fails requests.

    oslo.policy looks at the policy files on every check (several stat()
    calls, more when there is no file: more than the check itself costs);
    this enforcer looks at most once per ``[imagetags]
    policy_reload_interval`` seconds, and validates only rules that changed.
    """

    loaded = False
    _next_look = 0.0

    def load_rules(self, force_reload=False):
        now = time.monotonic()
        if self.loaded and not force_reload and now < self._next_look:
            return
        self._next_look = now + self.conf.imagetags.policy_reload_interval
        before = self.rules
        try:
            super().load_rules(force_reload)
            if self.rules is not before or not self.loaded:
                for name in (ADD_TAG, DELETE_TAG, GET_IMAGE, IS_ADMIN):
                    self._check(self.rules[name], [name])
        except Exception as e:
            if not self.loaded:
                raise ValueError('The policy file %s cannot be used: %s: %s'
                                 % (self.policy_path or
                                    self.conf.oslo_policy.policy_file,
                                    type(e).__name__, e)) from e
            self.rules = before
            LOG.exception('The policy file %s cannot be used; the rules '
                          'loaded before stay in force until it is fixed.',
                          self.policy_path)
        self.loaded = True

    def _check(self, check, path):
        if isinstance(check, policy.RuleCheck):
            if check.match in path:
                raise ValueError('a cycle: %s' % ' -> '.join(
                    path + [check.match]))
            if check.match not in self.rules:
                raise ValueError('%s uses the undefined rule %s' % (
                    path[-1], check.match))
            self._check(self.rules[check.match], path + [check.match])
        for sub in getattr(check, 'rules', None) or [
                getattr(check, 'rule', None)]:
            if sub is not None:
                self._check(sub, path)


def make_enforcer(conf):
    """An enforcer with the in-code defaults and the operator's file loaded,
    so that a policy file it cannot use fails at start-up."""
    enforcer = Enforcer(conf)
    enforcer.register_defaults(list_rules())
    enforcer.load_rules()
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
