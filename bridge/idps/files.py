"""IdPs declared as files: ``idp_metadata/<slug>.xml`` is the IdP's SAML metadata and
``<slug>.toml`` beside it (optional) holds its settings. Everything is validated at start-up and
every problem is reported with the file it is in.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path

from bridge.config.problems import Problems
from bridge.errors import ConfigError
from bridge.idps.metadata_signature import verify_metadata_signature
from bridge.idps.settings import SLUG_RE, IdentityProvider, IdpSettings, parse_idp_settings
from bridge.saml.metadata import parse_idp_metadata


def load_idp_directory(directory: str | Path, *, now: dt.datetime) -> dict[str, IdentityProvider]:
    """Load every ``<slug>.xml`` (+ ``<slug>.toml``); raise ``ConfigError`` listing all problems."""
    path = Path(directory)
    problems = Problems()
    idps: dict[str, IdentityProvider] = {}
    if not path.is_dir():
        raise ConfigError(f"idp_metadata_dir: {path} is not a directory (create it, or set "
                          "BRIDGE_IDP_METADATA_DIR)")
    for toml_file in sorted(path.glob("*.toml")):
        if not toml_file.with_suffix(".xml").exists():
            problems.add(f"{toml_file}: settings without metadata ({toml_file.stem}.xml missing)")
    for xml_file in sorted(path.glob("*.xml")):
        slug = xml_file.stem
        if not SLUG_RE.match(slug):
            problems.add(f"{xml_file}: the file name must be a slug matching "
                            "[a-z0-9][a-z0-9-]{0,62} followed by .xml")
            continue
        try:
            xml = xml_file.read_bytes()
            metadata = parse_idp_metadata(xml, source=str(xml_file), now=now)
            settings = load_idp_settings(xml_file.with_suffix(".toml"))
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        if settings.metadata_signing_certificate:
            # As for an IdP managed through the API: a file synced from elsewhere is only
            # trusted when the pinned certificate signed it.
            try:
                verify_metadata_signature(xml, settings.metadata_signing_certificate)
            except ConfigError as exc:
                problems.extend([f"{xml_file}: {p}" for p in exc.problems])
                continue
        idp = IdentityProvider(slug=slug, metadata=metadata, settings=settings)
        problems.extend([f"{xml_file.with_suffix('.toml')}: {p}" for p in idp.binding_problems()])
        idps[slug] = idp
    entity_ids: dict[str, str] = {}
    for slug, idp in idps.items():
        other = entity_ids.setdefault(idp.metadata.entity_id, slug)
        if other != slug:
            problems.add(f"{path}/{slug}.xml: entity ID {idp.metadata.entity_id!r} is already "
                            f"used by {other}.xml")
    problems.raise_any()
    return idps


def load_idp_settings(toml_file: Path) -> IdpSettings:
    if not toml_file.exists():
        return IdpSettings()
    try:
        raw = tomllib.loads(toml_file.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{toml_file}: not valid TOML ({exc})") from None
    return parse_idp_settings(raw, source=str(toml_file))
