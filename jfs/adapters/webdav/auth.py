"""The one user of `jfs webdav` (WEBDAV_USER / WEBDAV_PASSWORD): WsgiDAV's SimpleDomainController with
the password compared in constant time."""

from __future__ import annotations

import hmac
from typing import Any

from wsgidav.dc.simple_dc import SimpleDomainController


class SingleUserController(SimpleDomainController):  # type: ignore[misc]
    """Basic and Digest authentication against ``simple_dc.user_mapping`` (``{"*": {user: {...}}}``, or
    ``{"*": True}`` for anonymous access)."""

    def basic_auth_user(self, realm: str, user_name: str, password: str, environ: dict[str, Any]) -> bool:
        user = self._get_realm_entry(realm, user_name)
        expected = user.get("password") if isinstance(user, dict) else None
        if expected is None:
            hmac.compare_digest(password.encode(), password.encode())  # same work for an unknown user
            return False
        if not hmac.compare_digest(password.encode(), str(expected).encode()):
            return False
        environ["wsgidav.auth.roles"] = user.get("roles", [])
        return True
