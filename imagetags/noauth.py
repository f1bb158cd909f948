"""Development-only ``noauth`` filter: trusts the caller, no Keystone.

Requests carrying ``X-Identity-Status`` are passed on untouched, so tests can
send every identity header themselves. Otherwise ``X-Auth-Token:
user:project:role,role`` (any other token: an admin of project ``admin``)
sets the headers keystonemiddleware would set. The token is percent-decoded
first: python-glanceclient sends ``u%3Ap%3Amember%2Creader`` for
``u:p:member,reader``. Never use it in production.
"""
import urllib.parse


def filter_factory(global_conf, **local_conf):
    return NoAuth


class NoAuth:
    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        token = environ.get('HTTP_X_AUTH_TOKEN')
        if token and 'HTTP_X_IDENTITY_STATUS' not in environ:
            parts = urllib.parse.unquote(token).split(':')
            if len(parts) < 3:
                parts = ['admin', 'admin', 'admin,member,reader']
            environ.update(HTTP_X_IDENTITY_STATUS='Confirmed',
                           HTTP_X_USER_ID=parts[0], HTTP_X_PROJECT_ID=parts[1],
                           HTTP_X_ROLES=parts[2])
        return self.app(environ, start_response)
