"""When an IdP's metadata URL is fetched again, and what a scheduled refresh that went wrong
reports."""

from __future__ import annotations

from bridge.idps.settings import IdentityProvider

# A metadata URL is never fetched more often than this, whatever cacheDuration says.
MIN_REFRESH_SECONDS = 300


class RefreshFailed(RuntimeError):
    """A scheduled refresh hit an unexpected error for some IdPs; the others were refreshed."""

    def __init__(self, outcomes: dict[str, str]) -> None:
        self.outcomes = outcomes
        failed = {slug: o for slug, o in outcomes.items() if o.startswith("failed: internal")}
        super().__init__(f"metadata refresh failed unexpectedly for {', '.join(failed)} "
                         f"(the log has the traceback); outcomes: {outcomes}")


def refresh_interval(idp: IdentityProvider | None, fetched_at: float) -> float:
    """Seconds from a fetch to the next: the IdP's ``metadata_refresh_seconds`` (at most 7
    days), shortened by the document in force's ``cacheDuration`` (SAML Metadata §2.3.1: how
    long a copy may be cached) and by half the time its ``validUntil`` left at that fetch,
    so a fresh copy arrives before it expires; never under MIN_REFRESH_SECONDS."""
    if idp is None:
        return 6 * 3600
    interval = float(idp.settings.metadata_refresh_seconds)
    metadata = idp.metadata
    if metadata.cache_duration_seconds is not None:
        interval = min(interval, metadata.cache_duration_seconds)
    if metadata.valid_until is not None:
        interval = min(interval, (metadata.valid_until.timestamp() - fetched_at) / 2)
    return max(interval, MIN_REFRESH_SECONDS)
