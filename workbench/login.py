"""Who may open a dashboard: the users of the settings (hashed passwords) or the service's API keys.

Voila runs on jupyter_server, whose identity provider keeps the signed login cookie, the login and logout pages and
the checks on every page, kernel and websocket; this one only says which credentials are good::

    WORKBENCH_DASHBOARD_USERS='{"ann": "argon2:$argon2id$..."}'   # hashes: workbench dashboard --hash-password
"""
from __future__ import annotations

import hmac
import html
import ipaddress

from workbench.errors import WorkbenchError
from workbench.extras import extra
from workbench.settings import Settings, get_settings

with extra("notebook"):  # the dashboards' server
    from jupyter_server.auth import passwd, passwd_check
    from jupyter_server.auth.identity import PasswordIdentityProvider, User
    from traitlets import Dict, List, default
    from voila.voila_identity_provider import VoilaLoginHandler

IDENTITY_PROVIDER = "workbench.login.UsersIdentityProvider"


def credentials(settings: Settings | None = None) -> tuple[dict[str, str], list[str]]:
    """(user → hashed password, API keys) that open the dashboards."""
    s = settings or get_settings()
    keys = [k.strip() for k in f"{s.serve_keys},{s.serve_admin_keys}".split(",") if k.strip()]
    return dict(s.dashboard_users), keys


def check_bind(host: str, settings: Settings | None = None) -> bool:
    """Whether a login is needed on ``host``; an error for a host beyond this machine when nobody could log in."""
    users, keys = credentials(settings)
    if not (users or keys) and not _loopback(host):
        raise WorkbenchError(f"a dashboard on {host} would be open to anyone who reaches it: set WORKBENCH_DASHBOARD_USERS "
                             "(hashes from `workbench dashboard --hash-password`) or WORKBENCH_SERVE_KEYS, or keep "
                             "--host 127.0.0.1")
    return bool(users or keys)


def hash_password(password: str) -> str:
    """jupyter_server's salted argon2 hash, the form WORKBENCH_DASHBOARD_USERS holds."""
    return passwd(password)


class LoginPage(VoilaLoginHandler):
    """The login form: a name and a password (or an API key with any name)."""

    def _render(self, message=None):
        error = f"<p class='error'>{html.escape(message['error'])}</p>" if message and message.get("error") else ""
        self.write(f"""<!doctype html><html><head><meta charset="utf-8"><title>Sign in</title><style>
body{{font-family:system-ui,sans-serif;background:#f8fafc;display:flex;justify-content:center;margin-top:12vh}}
form{{background:#fff;padding:2em;border:1px solid #e2e8f0;border-radius:8px;width:20em}}
input{{display:block;width:100%;margin:.3em 0 1em;padding:.5em;box-sizing:border-box}} .error{{color:#b91c1c}}
button{{padding:.5em 1.5em;background:#2563eb;color:#fff;border:0;border-radius:4px}}</style></head><body>
<form action="{self.base_url}login?next={html.escape(self.get_argument('next', default=self.base_url), quote=True)}"
method="post"><h2>Sign in to the dashboard</h2>{error}{self.xsrf_form_html()}
<label>Name<input name="username" id="username" autocomplete="username"></label>
<label>Password or API key<input type="password" name="password" id="password" autocomplete="current-password"></label>
<button type="submit" id="login_submit">Sign in</button></form></body></html>""")


class UsersIdentityProvider(PasswordIdentityProvider):
    """jupyter_server's password provider for several named users, their hashes and the API keys from the settings."""

    users = Dict(config=True, help="user name → hashed password (jupyter_server.auth.passwd)")
    keys = List(config=True, help="API keys accepted as passwords")

    @default("users")
    def _default_users(self):
        return credentials()[0]

    @default("keys")
    def _default_keys(self):
        return credentials()[1]

    def __init__(self, **kwargs):
        super().__init__(**kwargs | {"login_handler_class": LoginPage})  # Voila hands in its password-only form

    @default("need_token")
    def _need_token_default(self):
        return False

    @property
    def auth_enabled(self) -> bool:
        return bool(self.users or self.keys)

    @property
    def login_available(self) -> bool:
        return self.auth_enabled

    def process_login_form(self, handler) -> User | None:
        name = handler.get_argument("username", default="").strip()
        password = handler.get_argument("password", default="")
        if not password:
            return None
        if name in self.users and passwd_check(self.users[name], password):
            return User(username=name, name=name)
        if any(hmac.compare_digest(password.encode(), k.encode()) for k in self.keys):
            return User(username=name or "api-key", name=name or "API key")
        return None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
