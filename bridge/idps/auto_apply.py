"""Whether a proposed metadata version applies without a person (docs/decisions/0012): the IdP's
policy (``metadata_auto_apply``) decides, but never for a document that is not shown to be newer
than the one in force, that is out of date by its own terms, or that brings back a certificate
this IdP once dropped. The certificates a proposal adds may apply on their own
(bridge.idps.certificate_split)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from bridge.idps.settings import IdentityProvider
from bridge.saml.metadata import IdpMetadata


def withheld_reasons(current: IdentityProvider | None, proposed: IdentityProvider, order: str,
                     readded: list[dict[str, Any]], now: float) -> list[str]:
    """Why ``proposed`` must wait for a person whatever the policy says (empty: nothing)."""
    withheld = []
    if current is None:
        withheld.append("the metadata in force does not load (its problems are shown with "
                        "the IdP), so nothing can be compared with it")
    elif order in ("older", "same"):
        withheld.append("the document is not newer than the one in force (by its "
                        + ("publication time" if proposed.metadata.published_at
                           and current.metadata.published_at else "validUntil") + ")")
    elif order == "not_comparable":
        withheld.append("the document in force is dated and this one carries no comparable "
                        "date (mdrpi:PublicationInfo creationInstant or validUntil), so it "
                        "cannot be shown to be newer")
    stale_since = _stale_since(proposed.metadata, now)
    if stale_since is not None:
        # SAML Metadata §2.3.1: a copy may be cached for cacheDuration after it was published;
        # a document past that says by itself that it is out of date (a replay, say).
        withheld.append(f"the document is out of date by its own terms: published "
                        f"{iso(proposed.metadata.published_at)} to be cached for "
                        f"{proposed.metadata.cache_duration_seconds} s, so until "
                        f"{iso(stale_since)}")
    if readded:
        withheld.append("it brings back certificates this IdP dropped before: "
                        + ", ".join(c["sha256"][:16] for c in readded))
    return withheld


def applies_without_person(diff: dict[str, Any], policy: str, withheld: list[str]) -> bool:
    return not withheld and bool(
        diff.get("renewal") or policy == "all"
        or (policy == "additions" and diff["only_certificate_additions"]))


def splittable(diff: dict[str, Any]) -> bool:
    """Whether the certificates a proposal adds can go in force without the rest of it: there
    are some, and they are still this entity's (a new entity ID is another IdP's keys)."""
    return bool(diff["certificates_added"]) and "entity_id" not in diff["changed"]


def _stale_since(metadata: IdpMetadata, now: float) -> dt.datetime | None:
    """When a document that gives both its publication time and a cacheDuration stopped being
    current, if it has; None otherwise."""
    if metadata.published_at is None or metadata.cache_duration_seconds is None:
        return None
    try:
        until = metadata.published_at + dt.timedelta(seconds=metadata.cache_duration_seconds)
    except OverflowError:  # past the year 9999: current for as long as dates go
        return None
    return until if until.timestamp() < now else None


def iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
