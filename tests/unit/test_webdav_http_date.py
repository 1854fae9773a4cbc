"""`http_date`: WsgiDAV's RFC 1123 dates (the fraction dropped), formatted once per second."""

from __future__ import annotations

import time

from wsgidav import util

from jfs.adapters.webdav.small_files import http_date


def test_same_text_as_wsgidav() -> None:
    for secs in (0, 1.5, 1733480000.999, -1.5, time.time()):
        assert http_date(secs) == util.get_rfc1123_time(secs), secs
