"""``imagetags.wsgi.api:application``: built when this module is imported,
for uwsgi (``--module``), which looks the name up in the module's namespace
and so never asks ``imagetags.wsgi`` to build it.
"""
from imagetags import wsgi

application = wsgi.load_app()
