"""The portal: pages for the regulator's and the licensees' analysts, served
at /portal/ by the same application, over the same policy and store as the
TAXII API. Server-rendered, usable without JavaScript.

app.py exempts this blueprint from the TAXII authentication and negotiation
(SELF_AUTHENTICATED_BLUEPRINTS): its requests carry a session cookie instead,
checked in views.py before every page.
"""

from __future__ import annotations

import hashlib
import hmac

from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()
PATH = "/portal"  # where the portal's pages are, and its cookie with them


class _FormTokenCookie(SecureCookieSessionInterface):
    """Flask's signed cookie, which holds only Flask-WTF's CSRF secret: Secure under HTTPS,
    and read and written for the portal's pages only. A TAXII request (which a browser
    would not send the cookie with: its path is /portal) gets Flask's null session, so
    the read path does not build a signing serializer for a cookie it never has."""

    def open_session(self, app: Flask, request):
        # By path: Flask opens the session before it matches the URL to a blueprint.
        if request.path != PATH and not request.path.startswith(PATH + "/"):
            return self.make_null_session(app)
        return super().open_session(app, request)

    def get_cookie_secure(self, app: Flask) -> bool:
        from .sessions import cookies_secure
        return cookies_secure(app.extensions["taxii"].settings)


def register(app: Flask) -> None:
    from . import regulator  # noqa: F401  (the regulator's pages, on the same blueprint)
    from .views import blueprint

    secret = app.extensions["taxii"].settings.secret
    app.secret_key = hmac.new(secret, b"taxii-server portal form tokens", hashlib.sha256).hexdigest()
    app.config.update(
        WTF_CSRF_CHECK_DEFAULT=False,     # checked by the portal's own before_request, never on TAXII POSTs
        SESSION_COOKIE_NAME="taxii_portal_forms",
        SESSION_COOKIE_PATH=PATH,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
    )
    app.session_interface = _FormTokenCookie()
    csrf.init_app(app)
    app.extensions["portal"] = {}  # what the pages work out once from the settings (views.py)
    app.register_blueprint(blueprint, url_prefix=PATH)
