"""URL checks shared by the settings and the client settings."""

from __future__ import annotations

from urllib.parse import urlsplit


def origin_of(url: str) -> str:
    """scheme://host[:port] of a URL (RFC 6454), or "" when it has none."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return ""
    return f"{parts.scheme}://{parts.netloc}"


def plain(url: str) -> bool:
    """Printable ASCII without spaces (RFC 3986 §2): urlsplit silently drops tabs and newlines,
    which then break the Location header the URL is written into."""
    return all("!" <= c <= "~" for c in url)
