"""WSGI entry points: ``imagetags.wsgi:application``, built on first use
(gunicorn; a mod_wsgi script's ``from imagetags.wsgi import application``),
and ``imagetags.wsgi.api:application``, built when that module is imported
(uwsgi, which looks the name up in the module's namespace).

The configuration directory is ``$IMAGETAGS_CONFIG_DIR`` (default
``/etc/imagetags``): ``api-paste.ini`` there, and ``imagetags.conf`` if it
exists. ``$IMAGETAGS_PIPELINE`` picks the paste pipeline (default ``main``).
"""
import os
import threading

from oslo_config import cfg
from oslo_log import log
from paste import deploy

from imagetags import conf as it_conf

_lock = threading.Lock()
_application = None


def load_app(config_dir=None, pipeline=None):
    config_dir = os.path.abspath(config_dir or os.environ.get(
        'IMAGETAGS_CONFIG_DIR', '/etc/imagetags'))
    conf_file = os.path.join(config_dir, 'imagetags.conf')
    files = [conf_file] if os.path.exists(conf_file) else []
    setup_logging(files)
    return deploy.loadapp(
        'config:' + os.path.join(config_dir, 'api-paste.ini'),
        name=pipeline or os.environ.get('IMAGETAGS_PIPELINE', 'main'),
        global_conf={'oslo_config_file': conf_file} if files else {})


def setup_logging(files):
    conf = cfg.ConfigOpts()
    it_conf.register_opts(conf)
    log.register_options(conf)
    conf([], project='imagetags', default_config_files=files or None)
    log.setup(conf, 'imagetags')
    return conf


def __getattr__(name):
    """Build ``application`` on first use, once, so importing is cheap."""
    global _application
    if name != 'application':
        raise AttributeError(name)
    with _lock:
        if _application is None:
            _application = load_app()
    return _application
