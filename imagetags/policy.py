"""Policy rules (Glance-compatible names and defaults) and their use.

``modify_image``/``get_image`` keep Glance's names and check strings, so an
operator's Glance policy.yaml works unchanged; ``add_image_tag`` and
``delete_image_tag`` let tag changes alone be delegated or restricted.
"""
import ast
import inspect
import logging
import time

from oslo_config import cfg
from oslo_context import context
from oslo_policy import _checks
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

    The rules it loads are evaluated by equal check trees that do once per
    load what oslo.policy does on every check (see ``_fast``); rules given
    to ``set_rules`` are used as they are.
    """

    loaded = False
    _next_look = 0.0
    _OSLO_LOG = logging.getLogger(policy.__name__)

    def enforce(self, rule, target, creds, do_raise=False, exc=None,
                *args, **kwargs):
        """oslo.policy's, but a rule whose loaded tree is one of ours is
        called directly. oslo.policy calls a rule through
        ``_checks._check``, which asks ``inspect`` for its signature on
        every check, more than the tree itself costs (in process a check
        went from 9.9 to 5.9 us; over HTTP a worker spent 6-8 us less CPU
        per request; issue 5). The steps around the call are oslo.policy's
        own: the rules' reload, the context's values, and the rule's scope.
        Anything else (a check object, an unregistered or unloaded rule, a
        dict of credentials, ``do_raise``, debug logging of the check) goes
        to oslo.policy's enforce as it is."""
        self.load_rules()
        root = self.rules.get(rule) if isinstance(rule, str) else None
        registered = self.registered_rules.get(rule) if root else None
        if (not isinstance(root, _Fast) or registered is None or do_raise
                or not isinstance(creds, context.RequestContext)
                or self._OSLO_LOG.isEnabledFor(logging.DEBUG)):
            return super().enforce(rule, target, creds, do_raise, exc,
                                   *args, **kwargs)
        creds = self._map_context_attributes_into_creds(creds)
        if creds.get('system_scope'):
            creds['system'] = creds['system_scope']
        if not self._enforce_scope(creds, registered, do_raise=False):
            return False
        return root(target, creds, self, rule)

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
                for name, check in list(self.rules.items()):
                    self.rules[name] = _fast(check)
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


# oslo.policy evaluates a rule with _checks._check(), which runs
# inspect.getfullargspec() on every node of the tree, on every check, to
# learn whether the node's __call__ takes current_rule (legacy checks do
# not); GenericCheck runs ast.literal_eval() on its kind on every check. That
# is nearly all of a check's cost. _fast() returns an equal tree (isinstance,
# str() and == as oslo's) in which the nodes of oslo's exact and, or, not,
# rule:, generic, role:, @ and ! classes are replaced by the subclasses
# below: they do that work once, when the rules are loaded, and otherwise
# what oslo's do, with the same return values and exceptions (role:, @ and !
# run oslo's own __call__). Any other node (http:, extensions, a service's
# own checks) is left as it is and called as _check calls it. Nothing of
# oslo.policy is patched: only this enforcer's rules are replaced. Loaded
# trees are not changed afterwards (oslo.policy does not either).


def _caller(check):
    """check called as _checks._check() calls it, the test done now."""
    if len(inspect.getfullargspec(check.__call__).args) > 4:
        return check
    return lambda target, creds, enforcer, current_rule: check(
        target, creds, enforcer)


class _Fast:
    """Equal to the oslo.policy node it replaces, and it to it."""

    _fields = ()

    def __eq__(self, other):
        return (getattr(other, '_oslo', type(other)) is self._oslo and all(
            getattr(self, f) == getattr(other, f) for f in self._fields))


class _And(_Fast, policy.AndCheck):
    _oslo, _fields = policy.AndCheck, ('rules',)

    def __call__(self, target, creds, enforcer, current_rule=None):
        for call in self._calls:
            if not call(target, creds, enforcer, current_rule):
                return False
        return True


class _Or(_Fast, policy.OrCheck):
    _oslo, _fields = policy.OrCheck, ('rules',)

    def __call__(self, target, creds, enforcer, current_rule=None):
        for call in self._calls:
            if call(target, creds, enforcer, current_rule):
                return True
        return False


class _Not(_Fast, policy.NotCheck):
    _oslo, _fields = policy.NotCheck, ('rule',)

    def __call__(self, target, creds, enforcer, current_rule=None):
        return not self._call(target, creds, enforcer, current_rule)


_NOTHING = object()


class _Rule(_Fast, policy.RuleCheck):
    """The rule is looked up on each call, as oslo's does; the test on the
    node found is done again only when another node is found."""
    _oslo, _fields = policy.RuleCheck, ('kind', 'match')
    _last = (_NOTHING, None)

    def __call__(self, target, creds, enforcer, current_rule=None):
        try:
            check = enforcer.rules[self.match]
            last, call = self._last
            if check is not last:
                call = _caller(check)
                self._last = check, call
            return call(target, creds, enforcer, current_rule)
        except KeyError:
            return False


class _Generic(_Fast, _checks.GenericCheck):
    _oslo, _fields = _checks.GenericCheck, ('kind', 'match')

    def __call__(self, target, creds, enforcer, current_rule=None):
        try:
            match = self.match % target
        except KeyError:
            return False
        if self._literal is not None:
            return match == self._literal
        return self._find_in_dict(creds, self._path, match)


# oslo's own checks, as ours so that a rule whose root is one of them
# (``context_is_admin: role:admin``) is called directly by Enforcer.enforce.
class _Role(_Fast, _checks.RoleCheck):
    _oslo, _fields = _checks.RoleCheck, ('kind', 'match')


class _True(_Fast, _checks.TrueCheck):
    _oslo, _fields = _checks.TrueCheck, ('scope_types',)


class _False(_Fast, _checks.FalseCheck):
    _oslo, _fields = _checks.FalseCheck, ('scope_types',)


_FAST = {policy.AndCheck: _And, policy.OrCheck: _Or, policy.NotCheck: _Not,
         policy.RuleCheck: _Rule, _checks.GenericCheck: _Generic,
         _checks.RoleCheck: _Role, _checks.TrueCheck: _True,
         _checks.FalseCheck: _False}


def _fast(check):
    """An equal tree that evaluates as check does; check itself when a
    node's work cannot be done now (_check would fail on it at each call)."""
    cls = _FAST.get(type(check))
    if cls is None:
        return check
    new = cls.__new__(cls)
    vars(new).update(vars(check))
    try:
        if cls in (_And, _Or):
            new.rules = [_fast(sub) for sub in check.rules]
            new._calls = [_caller(sub) for sub in new.rules]
        elif cls is _Not:
            new.rule = _fast(check.rule)
            new._call = _caller(new.rule)
        elif cls is _Generic:
            try:
                value = ast.literal_eval(check.kind)
            except ValueError:
                new._literal, new._path = None, check.kind.split('.')
            else:
                new._literal = str(value)
    except Exception:
        return check
    return new


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
        if None in (image['owner'], ctx.project_id) and not ctx.is_admin:
            raise webob.exc.HTTPForbidden(
                explanation=NOT_MUTABLE_MSG[action] % image['id'])
        return
    if enforcer.authorize(GET_IMAGE, t, ctx):
        raise webob.exc.HTTPForbidden(explanation=FORBIDDEN_MSG)
    raise webob.exc.HTTPNotFound()
