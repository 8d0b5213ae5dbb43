"""What changes when new metadata replaces the metadata in force: shown to the admin before
applying, and used by the IdP's auto-apply policy (certificate additions may apply at once;
removals and everything else wait for a person), with the order of the two documents by their
own dates (docs/decisions/0012-metadata-freshness.md)."""

from __future__ import annotations

from typing import Any

from bridge.saml.metadata import IdpMetadata, SigningCertificate


def _certificate(cert: SigningCertificate) -> dict[str, Any]:
    return {"sha256": cert.sha256_fingerprint, "not_before": cert.not_before.isoformat(),
            "not_after": cert.not_after.isoformat()}


def metadata_diff(current: IdpMetadata | None, proposed: IdpMetadata) -> dict[str, Any]:
    before = {c.sha256_fingerprint: c for c in (current.signing_certificates if current else ())}
    after = {c.sha256_fingerprint: c for c in proposed.signing_certificates}
    changes: dict[str, Any] = {
        "certificates_added": [_certificate(after[k]) for k in after if k not in before],
        "certificates_removed": [_certificate(before[k]) for k in before if k not in after],
        "certificates_kept": [_certificate(after[k]) for k in after if k in before],
    }
    fields = {
        "entity_id": lambda m: m.entity_id,
        "sso_redirect_url": lambda m: m.sso_redirect_url,
        "sso_post_url": lambda m: m.sso_post_url,
        "slo_redirect_url": lambda m: m.slo_redirect_url,
        "slo_post_url": lambda m: m.slo_post_url,
        "slo_redirect_response_url": lambda m: m.slo_redirect_response_url,
        "slo_post_response_url": lambda m: m.slo_post_response_url,
        "nameid_formats": lambda m: list(m.nameid_formats),
        "want_authn_requests_signed": lambda m: m.want_authn_requests_signed,
    }
    changed = {}
    for name, read in fields.items():
        old = read(current) if current else None
        new = read(proposed)
        if old != new:
            changed[name] = {"from": old, "to": new}
    changes["changed"] = changed
    changes["only_certificate_additions"] = (
        current is not None and not changed and not changes["certificates_removed"]
        and bool(changes["certificates_added"]))
    changes["identical"] = current is not None and not changed and not changes[
        "certificates_added"] and not changes["certificates_removed"]
    return changes


def document_order(current: IdpMetadata, proposed: IdpMetadata) -> str:
    """Whether ``proposed`` is a newer document than ``current``, by the documents' own times:
    the MDRPI publication instant when both carry one, else ``validUntil`` when both carry one
    (a publisher re-signs with a later expiry). "newer", "older" or "same"; "not_comparable" when
    ``current`` is dated but not in a field ``proposed`` also carries; "unknown" when ``current``
    carries no date at all (then no order can be shown either way)."""
    for field in ("published_at", "valid_until"):
        before, after = getattr(current, field), getattr(proposed, field)
        if before is not None and after is not None:
            return "newer" if after > before else "older" if after < before else "same"
    if current.published_at is None and current.valid_until is None:
        return "unknown"
    return "not_comparable"
