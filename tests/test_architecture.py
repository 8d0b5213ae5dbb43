"""Layout rules that hold the design together."""

from __future__ import annotations

import subprocess
import sys

DOMAIN = ["bridge.saml.response", "bridge.saml.sp", "bridge.saml.subject", "bridge.claims",
          "bridge.claims.v1", "bridge.tokens.keys", "bridge.tokens.access", "bridge.tokens.refresh",
          "bridge.store.db", "bridge.store.models", "bridge.services", "bridge.application",
          "bridge.audit", "bridge.replay", "bridge.login.start", "bridge.login.acs",
          "bridge.login.completions", "bridge.login.idp_initiated", "bridge.oauth.requests",
          "bridge.oauth.tokens", "bridge.oauth.token_endpoint",
          "bridge.oauth.grants.authorization_code", "bridge.oauth.grants.refresh_token",
          "bridge.oauth.grants.token_exchange", "bridge.oauth.grants.saml_bearer",
          "bridge.oauth.revocation", "bridge.oauth.introspection", "bridge.oauth.userinfo",
          "bridge.logout.rp_initiated", "bridge.logout.single_logout", "bridge.config",
          "bridge.identity", "bridge.idps.preview", "bridge.patterns", "bridge.jobs.leases",
          "bridge.idps.settings", "bridge.idps.registry"]


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

    def sites(call: str) -> list[str]:
        return [p.relative_to(root).as_posix() for p in root.rglob("*.py")
                if call in p.read_text() and not p.relative_to(root).as_posix().startswith("dev/")]

    # tokens/signing.py encodes JWTs itself (tests/test_jws_encoding.py holds it to PyJWT's
    # bytes), so nothing else may call jwt.encode; it alone decodes them.
    assert sites("jwt.encode(") == []
    assert sites("jwt.decode(") == ["tokens/signing.py"]
    assert sites("def sign(") == ["tokens/signing.py"]


def test_docstrings_are_utf8_text() -> None:
    # Python 3.13.0 encodes every docstring as UTF-8 when it compiles a module (to dedent it): a
    # lone surrogate written as an escape in one ("\ud800" rather than "\\ud800") made the module,
    # and with it the whole application, fail to import there.
    import ast
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    offenders = []
    for path in sorted([*(repo / "bridge").rglob("*.py"), *(repo / "scripts").glob("*.py"),
                        *(repo / "tests").rglob("*.py")]):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                docstring = ast.get_docstring(node, clean=False)
                try:
                    (docstring or "").encode("utf-8")
                except UnicodeEncodeError:
                    offenders.append(f"{path.relative_to(repo)}:{getattr(node, 'lineno', 1)}")
    assert offenders == []
