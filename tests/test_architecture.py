"""Layout rules that hold the design together."""

from __future__ import annotations

import subprocess
import sys

DOMAIN = ["bridge.saml.response", "bridge.saml.sp", "bridge.saml.subject", "bridge.claims",
          "bridge.claims.v1", "bridge.tokens.keys", "bridge.tokens.access", "bridge.tokens.refresh",
          "bridge.store.db", "bridge.store.models", "bridge.federation", "bridge.authorization",
          "bridge.config", "bridge.identity", "bridge.idps.preview", "bridge.patterns",
          "bridge.jobs.leases", "bridge.idps.settings", "bridge.idps.registry"]


def test_domain_imports_no_flask() -> None:
    code = (
        "import sys\n"
        + "".join(f"import {module}\n" for module in DOMAIN)
        + "bad = sorted(m for m in sys.modules if m == 'flask' or m.startswith(('flask.', 'werkzeug')))\n"
        + "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == ""


def test_only_saml_package_imports_onelogin_and_xmlsec() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "bridge"
    offenders = []
    for path in root.rglob("*.py"):
        relative = path.relative_to(root).as_posix()
        if relative.startswith(("saml/", "dev/")):
            continue
        text = path.read_text()
        if "import onelogin" in text or "from onelogin" in text or "import xmlsec" in text:
            offenders.append(relative)
    assert offenders == []


def test_lxml_and_xmlsec_share_libxml2() -> None:
    # Mismatched wheels fail at import with "lxml & xmlsec libxml2 library version mismatch".
    import lxml.etree
    import xmlsec

    assert xmlsec.get_libxml_version() == lxml.etree.LIBXML_VERSION


def test_only_one_place_encodes_and_decodes_jwts() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "bridge"
    for call in ("jwt.encode(", "jwt.decode("):
        sites = [p.relative_to(root).as_posix() for p in root.rglob("*.py")
                 if call in p.read_text() and not p.relative_to(root).as_posix().startswith("dev/")]
        assert sites == ["tokens/signing.py"], call


def test_saml_imports_no_claims_storage_or_idp_management() -> None:
    # saml/ is protocol only (docs/decisions/0016-layout-by-flow.md): what an IdP is to us lives in
    # idps/, the SP's stored keys in sp_keys/; saml/ receives both as plain values.
    import ast
    from pathlib import Path

    forbidden = ("bridge.claims", "bridge.store", "bridge.idps", "bridge.sp_keys", "bridge.tokens",
                 "bridge.federation")
    root = Path(__file__).resolve().parent.parent / "bridge" / "saml"
    offenders = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            offenders += [f"{path.name}: {name}" for name in names
                          if name.startswith(forbidden)]
    assert offenders == []
