"""imagetags' Enforcer decides exactly as a plain oslo.policy Enforcer.

It evaluates the rules it loads with its own, equal check trees
(``imagetags.policy._fast``): every rule of several policy files, plus a
name no file defines, is checked for several callers and targets by both,
and the outcomes (value and its type, or the exception) must be the same.
"""
import ast
import copy
import inspect
import logging
import os
from unittest import mock

import fixtures
from oslo_config import cfg
from oslo_context import context
from oslo_policy import _checks
from oslo_policy import policy as oslo_policy
import testtools

from imagetags import conf as it_conf
from imagetags import policy

OWNER, OTHER, MEMBER = 'p-owner', 'p-other', 'p-member'


def _ctx(roles, project=None, **kw):
    return context.RequestContext(user_id='u', project_id=project,
                                  roles=roles, overwrite=False, **kw)


CREDS = {
    'admin': _ctx(['admin', 'member', 'reader'], 'p-admin'),
    'owner': _ctx(['member', 'reader'], OWNER),
    'owner_reader': _ctx(['reader'], OWNER),
    'owner_member_only': _ctx(['member'], OWNER),
    'owner_no_roles': _ctx([], OWNER),
    'other': _ctx(['member', 'reader'], OTHER),
    'shared_member': _ctx(['member', 'reader'], MEMBER),
    'no_project': _ctx(['member', 'reader']),
    'system_admin': _ctx(['admin'], system_scope='all'),
    'domain_admin': _ctx(['admin'], domain_id='d'),
    'dict': {'roles': ['Member', 'x'], 'project_id': OWNER,
             'user': {'enabled': True, 'groups': [{'id': 'g1'}]},
             'is_admin': True},
}


def _image(visibility, owner=OWNER, member=None):
    return {'id': 'i', 'owner': owner, 'visibility': visibility,
            'member': member, 'name': None, 'status': 'active'}


TARGETS = {
    'private': policy.target(_image('private'), 'x'),
    'public': policy.target(_image('public'), 'member'),
    'shared': policy.target(_image('shared', member=MEMBER), '[1, 2]'),
    'community': policy.target(_image('community'), 'x'),
    'no_owner': policy.target(_image('public', owner=None), 'x'),
    'extra': dict(policy.target(_image('private'), 'x'), is_public=True,
                  n=1, member_id=MEMBER),
    'empty': {},
}


# Custom checks as a service registers them (oslo.policy's registry is
# process-wide: they are registered for this module's tests only).
class Legacy(_checks.Check):
    """A legacy (3-argument) check returning a truthy non-bool."""

    def __call__(self, target, creds, enforcer):
        return ('has:' + self.match) if self.match in creds['roles'] else ''


class Current(_checks.Check):
    """A 4-argument check that answers with the rule being checked."""

    def __call__(self, target, creds, enforcer, current_rule=None):
        return current_rule or 0


class KeyErrorCheck(_checks.Check):
    def __call__(self, target, creds, enforcer, current_rule=None):
        raise KeyError(self.match)


class Boom(_checks.Check):
    def __call__(self, target, creds, enforcer, current_rule=None):
        raise RuntimeError(self.match)


class OwnRole(_checks.RoleCheck):
    """A service's subclass of an oslo check: left as it is."""


CUSTOM = {'legacy': Legacy, 'current': Current, 'keyerr': KeyErrorCheck,
          'boom': Boom, 'ownrole': OwnRole}

# name -> policy file (YAML). Each must be one imagetags starts with.
FILES = {
    'in-code defaults': '{}\n',
    'glance legacy': '''
context_is_admin: "role:admin"
default: "role:admin"
admin_or_owner: "is_admin:True or project_id:%(project_id)s"
get_image: "rule:admin_or_owner or 'public':%(visibility)s or
  'community':%(visibility)s or
  (project_id:%(member_id)s and 'shared':%(visibility)s)"
modify_image: "rule:admin_or_owner"
add_image_tag: "rule:modify_image"
delete_image_tag: ""
publicize_image: "role:admin"
uses_missing: "rule:nowhere or role:reader"
''',
    'nesting': '''
context_is_admin: "role:admin and not role:reader or !"
modify_image: "not (role:reader and not role:member) and
  (role:member or (role:admin and not !)) and project_id:%(project_id)s"
add_image_tag: "(rule:modify_image or rule:context_is_admin) and not
  (not role:member and not role:admin)"
delete_image_tag: "(@ and !) or (not ! and rule:modify_image and
  (role:member or role:admin) and not rule:context_is_admin)"
get_image: "@"
falls_to_default: "rule:nowhere"
not_missing: "not rule:nowhere"
nothing: "!"
everything: "@"
''',
    'default denies': '''
default: "!"
modify_image: "role:member and project_id:%(project_id)s"
falls_to_default: "rule:nowhere or role:reader"
not_missing: "not rule:nowhere and role:member"
''',
    'generic literals': '''
get_image: "'public':%(visibility)s or ('shared':%(visibility)s and
  project_id:%(member_id)s) or True:%(is_public)s or 1:%(n)s or
  None:%(member)s"
add_image_tag: "roles:%(tag)s or 'x':%(tag)s or [1,2]:%(tag)s"
delete_image_tag: "user.enabled:True or user.groups.id:g1 or
  project_id:%(project_id)s and role:member"
is_admin_literal: "is_admin:True"
syntax_error_kind: "role:member and 1a:%(tag)s"
type_error_match: "'public':%(visibility)d"
missing_key: "'x':%(nowhere)s or role:reader"
''',
    'custom checks': '''
context_is_admin: "rule:legacy_admin"
legacy_admin: "legacy:admin"
modify_image: "legacy:member and project_id:%(project_id)s"
add_image_tag: "rule:modify_image and not legacy:nobody"
delete_image_tag: "rule:legacy_admin or (legacy:member and not
  legacy:reader) or ownrole:reader"
which_rule: "rule:current_rule"
current_rule: "current:x"
in_or: "current:x or legacy:member"
lookup_keyerror: "rule:keyerror_rule"
keyerror_rule: "keyerr:x"
root_keyerror: "keyerr:x"
boom: "role:member and boom:x"
''',
}


def _outcome(enforcer, name, target, creds):
    if isinstance(creds, dict):   # enforce() may add "system" to it
        creds = copy.deepcopy(creds)
    try:
        result = enforcer.enforce(name, target, creds)
    except Exception as e:
        return 'raises', type(e), str(e)
    return 'returns', type(result), result


# Generic checks whose kind ast.literal_eval() fails on with another error
# than ValueError (oslo.policy raises it at each check): left as they are.
KEPT = {'1a:%(tag)s'}


def _nodes(check):
    yield check
    for sub in getattr(check, 'rules', None) or [
            getattr(check, 'rule', None)]:
        if sub is not None:
            yield from _nodes(sub)


class PolicyEvalTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        for name, cls in CUSTOM.items():
            self.assertNotIn(name, _checks.registered_checks)
            _checks.register(name, cls)
            self.addCleanup(_checks.registered_checks.pop, name)
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.path = os.path.join(self.dir, 'policy.yaml')
        self.dirs = os.path.join(self.dir, 'policy.d')
        os.mkdir(self.dirs)
        self.mtime = 1e9

    def write(self, text, path=None):
        path = path or self.path
        with open(path, 'w') as f:
            f.write(text)
        # oslo.policy re-reads a file when its mtime moves.
        self.mtime += 10
        os.utime(path, (self.mtime, self.mtime))

    def enforcers(self, text, policy_dirs=()):
        """(imagetags', a plain oslo.policy one), both looking at the
        file on every check."""
        self.write(text)
        conf = cfg.ConfigOpts()
        it_conf.register_opts(conf)
        conf([], project='imagetags', default_config_files=[])
        conf.set_override('policy_file', self.path, group='oslo_policy')
        conf.set_override('policy_dirs', list(policy_dirs),
                          group='oslo_policy')
        conf.set_override('policy_reload_interval', 0, group='imagetags')
        ours = policy.make_enforcer(conf)
        plain = oslo_policy.Enforcer(conf)
        plain.register_defaults(policy.list_rules())
        plain.load_rules()
        return ours, plain

    def assertSame(self, ours, plain, names=(), compiled=True):
        """Same outcomes for every rule, caller and target, and trees that
        are equal to oslo's; with compiled, made of imagetags' own nodes
        (but for those whose work cannot be done when the rules are loaded
        and those of other classes)."""
        names = sorted(set(names) | set(plain.rules) | {'nowhere'})
        compared = 0
        for name in names:
            for creds_name, creds in CREDS.items():
                for target_name, target in TARGETS.items():
                    theirs = _outcome(plain, name, target, creds)
                    self.assertEqual(
                        theirs, _outcome(ours, name, target, creds),
                        (name, creds_name, target_name))
                    compared += 1
        self.assertEqual(sorted(plain.rules), sorted(ours.rules))
        for name, check in plain.rules.items():
            mine = ours.rules[name]
            self.assertEqual(str(check), str(mine))
            self.assertTrue(check == mine and mine == check, name)
            self.assertFalse(check != mine or mine != check, name)
            for node, fast in zip(_nodes(check), _nodes(mine)):
                self.assertIsInstance(fast, type(node))
                self.assertEqual(node, fast)
                if not compiled:
                    continue
                if type(node) in policy._FAST and str(node) not in KEPT:
                    self.assertIs(policy._FAST[type(node)], type(fast))
                else:
                    self.assertIs(type(node), type(fast))
        return compared

    def test_same_decisions(self):
        results = {}
        for file_name, text in FILES.items():
            ours, plain = self.enforcers(text)
            self.assertGreater(self.assertSame(ours, plain), 100)
            for name in (policy.ADD_TAG, policy.DELETE_TAG,
                         policy.GET_IMAGE, policy.IS_ADMIN):
                for creds in CREDS.values():
                    if isinstance(creds, dict):
                        continue
                    for target in TARGETS.values():
                        self.assertEqual(
                            plain.authorize(name, target, creds),
                            ours.authorize(name, target, creds))
                        results.setdefault(file_name, set()).add(
                            ours.authorize(name, target, creds))
        # The files exercise both answers, and the odd values and errors.
        for file_name in FILES:
            self.assertLessEqual({True, False}, results[file_name],
                                 file_name)
        ours, plain = self.enforcers(FILES['custom checks'])
        owner, target = CREDS['owner'], TARGETS['private']
        self.assertEqual('has:admin', ours.enforce(
            'context_is_admin', target, CREDS['admin']))
        self.assertEqual('which_rule', ours.enforce('which_rule', target,
                                                    owner))
        self.assertIs(False, ours.enforce('lookup_keyerror', target, owner))
        self.assertRaises(KeyError, ours.enforce, 'root_keyerror', target,
                          owner)
        self.assertRaises(RuntimeError, ours.enforce, 'boom', target, owner)
        self.assertIs(OwnRole, type(ours.rules['delete_image_tag'].rules[-1]))
        ours, plain = self.enforcers(FILES['generic literals'])
        self.assertRaises(SyntaxError, ours.enforce, 'syntax_error_kind',
                          target, owner)
        self.assertRaises(TypeError, ours.enforce, 'type_error_match',
                          TARGETS['public'], owner)

    def test_a_wrong_decision_is_caught(self):
        ours, plain = self.enforcers(FILES['in-code defaults'])
        self.assertSame(ours, plain)
        # Drop the reader branch of get_image: other callers see less.
        get_image = ours.rules[policy.GET_IMAGE]
        get_image._calls = get_image._calls[:1]
        self.assertRaises(AssertionError, self.assertSame, ours, plain)

    def test_reloaded_rules_are_used(self):
        ours, plain = self.enforcers(
            'delete_image_tag: "rule:context_is_admin"\n',
            policy_dirs=[self.dirs])
        owner, target = CREDS['owner'], TARGETS['private']
        self.assertFalse(ours.authorize(policy.DELETE_TAG, target, owner))
        self.assertTrue(ours.authorize(policy.ADD_TAG, target, owner))
        self.assertSame(ours, plain)
        self.write('delete_image_tag: "rule:modify_image"\n'
                   'modify_image: "role:reader"\n')
        self.assertTrue(ours.authorize(policy.DELETE_TAG, target, owner))
        self.assertSame(ours, plain)
        # A change in policy.d alone.
        self.write('modify_image: "!"\n',
                   os.path.join(self.dirs, 'tags.yaml'))
        self.assertFalse(ours.authorize(policy.DELETE_TAG, target, owner))
        self.assertFalse(ours.authorize(policy.ADD_TAG, target, owner))
        self.assertSame(ours, plain)
        # A broken file: the rules before stay (plain oslo.policy would
        # fall back to "default", which allows).
        self.write('delete_image_tag: "rule:typo"\n')
        with fixtures.FakeLogger():
            self.assertFalse(ours.authorize(policy.DELETE_TAG, target,
                                            owner))
        self.assertEqual('!', str(ours.rules['modify_image']))

    def test_rules_changed_in_place_are_followed(self):
        # rule: looks the rule up at each check, as oslo's does; rules set
        # outside a load are oslo's own trees, as given.
        ours, plain = self.enforcers(FILES['custom checks'])
        self.assertSame(ours, plain)
        for enforcer in (ours, plain):
            enforcer.set_rules(oslo_policy.Rules.from_dict({
                'legacy_admin': 'legacy:reader',
                'modify_image': 'current:x and not legacy:admin'}),
                overwrite=False)
        self.assertIs(_checks.AndCheck, type(ours.rules['modify_image']))
        self.assertIsInstance(ours.rules['add_image_tag'], policy._And)
        self.assertSame(ours, plain, compiled=False)

    def test_our_context_gives_oslo_contexts_policy_values(self):
        """imagetags' RequestContext hands oslo.policy its values as a plain
        dict (cheaper to copy on every check), the same as oslo.context's,
        so it is decided on exactly as oslo.context's is."""
        from imagetags import context as it_context
        ours, plain = self.enforcers(FILES['in-code defaults'])
        for creds in CREDS.values():
            if isinstance(creds, dict):
                continue
            mine = it_context.RequestContext.from_dict(creds.to_dict())
            mine.system_scope = creds.system_scope
            self.assertIs(dict, type(mine.to_policy_values()))
            self.assertEqual(dict(creds.to_policy_values()),
                             mine.to_policy_values())
            for name in (policy.ADD_TAG, policy.GET_IMAGE, policy.IS_ADMIN):
                for target in TARGETS.values():
                    self.assertEqual(_outcome(plain, name, target, creds),
                                     _outcome(ours, name, target, mine))

    def test_oslo_policy_itself_is_untouched(self):
        ours, plain = self.enforcers(FILES['nesting'])
        for check in plain.rules.values():
            for node in _nodes(check):
                self.assertTrue(type(node).__module__.startswith(
                    'oslo_policy.'), node)
        for cls in (_checks.AndCheck, _checks.OrCheck, _checks.NotCheck,
                    _checks.RuleCheck, _checks.RoleCheck,
                    _checks.GenericCheck, _checks.TrueCheck,
                    _checks.FalseCheck):
            self.assertFalse(hasattr(cls.__call__, '__signature__'))
            self.assertEqual('oslo_policy._checks', cls.__call__.__module__)
        self.assertEqual('oslo_policy._checks', _checks._check.__module__)

    def test_the_work_is_done_once(self):
        ours, plain = self.enforcers(FILES['in-code defaults'])
        owner, target = CREDS['other'], TARGETS['shared']
        counts = {}
        for name, enforcer in (('ours', ours), ('plain', plain)):
            for rule in (policy.ADD_TAG, policy.GET_IMAGE):
                enforcer.authorize(rule, target, owner)
            with mock.patch.object(
                    inspect, 'getfullargspec',
                    wraps=inspect.getfullargspec) as argspec, \
                    mock.patch.object(
                        inspect, '_signature_from_function',
                        wraps=inspect._signature_from_function) as sig, \
                    mock.patch.object(ast, 'literal_eval',
                                      wraps=ast.literal_eval) as literal:
                for rule in (policy.ADD_TAG, policy.GET_IMAGE):
                    self.assertEqual(rule == policy.GET_IMAGE,
                                     enforcer.authorize(rule, target, owner))
            counts[name] = (argspec.call_count, sig.call_count,
                            literal.call_count)
        # None: the loaded roots are called directly.
        self.assertEqual((0, 0, 0), counts['ours'])
        self.assertGreater(counts['plain'][0], 10)
        self.assertEqual(counts['plain'][0], counts['plain'][1])
        self.assertGreater(counts['plain'][2], 3)

    def test_the_other_checks_go_to_oslo_policys_enforce(self):
        """A check that the direct call does not take (do_raise, a dict of
        credentials, a check object, debug logging) is oslo.policy's own,
        and its outcome the same."""
        ours, plain = self.enforcers(FILES['in-code defaults'])
        owner, other = CREDS['owner'], CREDS['other']
        target = TARGETS['private']
        rule = ours.rules[policy.ADD_TAG]
        calls = []
        real = oslo_policy.Enforcer.enforce

        def counted(enforcer, *args, **kwargs):
            if enforcer is ours:
                calls.append(args[0])
            return real(enforcer, *args, **kwargs)
        self.useFixture(fixtures.MonkeyPatch(
            'oslo_policy.policy.Enforcer.enforce', counted))
        self.assertTrue(ours.enforce(policy.ADD_TAG, target, owner))
        self.assertFalse(ours.enforce(policy.ADD_TAG, target, other))
        self.assertEqual([], calls)
        for enforcer in (ours, plain):
            e = self.assertRaises(
                oslo_policy.PolicyNotAuthorized, enforcer.enforce,
                policy.ADD_TAG, target, other, do_raise=True)
            self.assertIn(policy.ADD_TAG, str(e))
            self.assertTrue(enforcer.enforce(
                policy.ADD_TAG, target, dict(owner.to_policy_values())))
            self.assertTrue(enforcer.enforce(rule, target, owner))
        self.assertEqual([policy.ADD_TAG, policy.ADD_TAG, rule], calls)
        logger = self.useFixture(fixtures.FakeLogger(
            name='oslo_policy.policy', level=logging.DEBUG))
        self.assertFalse(ours.enforce(policy.ADD_TAG, target, other))
        self.assertIn('enforce: rule="%s"' % policy.ADD_TAG, logger.output)
        self.assertEqual(policy.ADD_TAG, calls[-1])
