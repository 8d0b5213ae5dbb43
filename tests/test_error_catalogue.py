"""docs/errors.md lists every stable code the bridge can raise."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATTERNS = [
    r'(?:SamlRejected|AuthorizeError|NotFound|StoreUnavailable|refuse|_invalid)\(\s*"([a-z0-9_]+)"',
    r'\bcode="([a-z0-9_]+)"',
    r'TokenError\(\s*"([a-z0-9_]+)"',
    r'_CODES = \{(?s:.*?)\}',
]


def raised_codes() -> set[str]:
    codes: set[str] = set()
    for path in (ROOT / "bridge").rglob("*.py"):
        text = path.read_text()
        for pattern in PATTERNS[:3]:
            codes.update(re.findall(pattern, text))
        for table in re.findall(PATTERNS[3], text):
            codes.update(re.findall(r':\s*"([a-z0-9_]+)"', table))
    return codes


def test_every_raised_code_is_documented() -> None:
    documented = set(re.findall(r"`([a-z0-9_]+)`", (ROOT / "docs" / "errors.md").read_text()))
    codes = raised_codes()
    assert len(codes) > 40  # the scan itself works
    assert sorted(codes - documented) == []
