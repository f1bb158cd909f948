"""Configuration options, declared once and listed for oslo-config-generator.

The quota and anonymous-access options keep Glance's names and group, so that
a filter pointed at ``glance-api.conf`` honours the operator's Glance values.
"""
from oslo_config import cfg
from oslo_db import options as db_options
from oslo_policy import opts as policy_opts

DEFAULT_OPTS = [
    cfg.IntOpt('image_tag_quota', default=128,
               help='Maximum number of tags allowed on an image. Any negative '
                    'value is interpreted as unlimited. Same option and '
                    'meaning as in Glance.'),
    cfg.BoolOpt('allow_anonymous_access', default=False,
                help='Give requests without a confirmed identity a read-only '
                     'anonymous context (so tag changes answer 403) instead '
                     'of answering 401. Same option as in Glance.'),
    cfg.StrOpt('default_publisher_id', default='image.localhost',
               help='Publisher id of the image.update notification sent '
                    'for each tag change (with [oslo_messaging_notifications] '
                    'driver set). Same option as in Glance.'),
    cfg.ListOpt('disabled_notifications', default=[],
                help='Notifications not to send: image.update, or the image '
                     'group, turns off the one a tag change sends. Same '
                     'option as in Glance.'),
    cfg.StrOpt('state_path', default='/var/lib/imagetags',
               help='Directory for the embedded SQLite database: the default '
                    '[database] connection is '
                    'sqlite:///$state_path/imagetags.sqlite.'),
]

IMAGETAGS_OPTS = [
    cfg.StrOpt('driver', default='sql',
               help='Database driver, by its name in the "imagetags.driver" '
                    'entry point group: "sql" (through oslo.db: SQLite; '
                    'MariaDB/MySQL with PyMySQL or mysqlclient; PostgreSQL '
                    'with psycopg2) or "memory" (in-process, for '
                    'development and tests).'),
    cfg.IntOpt('db_retries', default=10, min=0,
               help='How many times a tag change is retried when the '
                    'database reports lock contention (SQLite busy, '
                    'deadlock, Galera certification failure, serialization '
                    'failure) before the request answers 503.'),
    cfg.IntOpt('lock_timeout', default=1, min=1,
               help='Seconds a tag change waits for the image\'s row lock '
                    '(SQLite: for the database\'s write lock, unless the '
                    '[database] connection URL sets its own timeout) before '
                    'it is retried (db_retries), then answered 503. Without '
                    'it, a lock that another session holds (a stuck '
                    'transaction, an open database shell) would hold the '
                    'request for MariaDB\'s innodb_lock_wait_timeout (50 s '
                    'per attempt) or, on PostgreSQL, for ever: past the WSGI '
                    'server\'s own timeout. With the defaults a locked '
                    'image answers 503 after about 12 s. PostgreSQL with '
                    'prepared_statements = false (behind PgBouncer in '
                    'transaction mode, where a session setting would reach '
                    'other clients): not set; set lock_timeout on the '
                    'database role instead.'),
    cfg.FloatOpt('policy_reload_interval', default=1.0, min=0,
                 help='Seconds between two looks at the policy file (and '
                      'policy.d) for changes; 0 looks before every check, '
                      'as oslo.policy does by default.'),
    cfg.BoolOpt('prepared_statements', default=True,
                help='PostgreSQL and MariaDB: prepare the statements of a '
                     'request once per database connection (SQL PREPARE) '
                     'instead of parsing them (PostgreSQL: and planning, '
                     'which costs it more than running them) on every '
                     'request. Turn it off behind a pooler or proxy that may '
                     'run one client connection\'s statements on several '
                     'server connections (such as PgBouncer in transaction '
                     'or statement mode). On MariaDB each '
                     'pooled connection holds 5 of the server\'s '
                     'max_prepared_stmt_count (16382 by default, for the '
                     'connections of every worker: a sync worker uses one, a '
                     'threaded one up to max_pool_size + max_overflow): past '
                     'it, a request on a new connection answers 503 and the '
                     'log names the limit.'),
    cfg.IntOpt('retry_after', default=1, min=0,
               help='Seconds sent in the Retry-After header of a 503 '
                    'answer when the database is unavailable or busy.'),
]

imagetags_group = cfg.OptGroup('imagetags', title='imagetags options')


def register_opts(conf):
    conf.register_opts(DEFAULT_OPTS)
    conf.register_opts(IMAGETAGS_OPTS, group=imagetags_group)
    set_lib_defaults(conf)


def set_lib_defaults(conf):
    """Library defaults: the embedded SQLite database and policy.yaml."""
    db_options.set_defaults(
        conf, connection='sqlite:///$state_path/imagetags.sqlite')
    policy_opts.set_defaults(conf, policy_file='policy.yaml')


def list_opts():
    return [(None, DEFAULT_OPTS), (imagetags_group, IMAGETAGS_OPTS)]


def load(config_files=(), project='imagetags'):
    """A fresh ConfigOpts with every option registered and files parsed.

    With no files, oslo.config searches the usual places for the project
    (``/etc/imagetags/imagetags.conf`` and friends).
    """
    conf = cfg.ConfigOpts()
    register_opts(conf)
    conf([], project=project,
         default_config_files=list(config_files) or None)
    return conf
