"""URL checks shared by the settings and the client settings."""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit


def origin_of(url: str) -> str:
    """scheme://host[:port] of a URL (RFC 6454), or "" when it has none (also when it does not
    parse, or its port is not one from 1 to 65535)."""
    parts = split_url(url)
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        return ""
    return f"{parts.scheme}://{parts.netloc}"


def split_url(url: str) -> SplitResult | None:
    """The parts of a URL; None when it does not parse ("https://[::1") or names a port that is
    not one from 1 to 65535 (urlsplit raises for some of these only when the port is read)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if port == 0:
        return None
    return parts


def plain(url: str) -> bool:
    """Printable ASCII without spaces (RFC 3986 §2): urlsplit silently drops tabs and newlines,
    which then break the Location header the URL is written into."""
    return all("!" <= c <= "~" for c in url)
