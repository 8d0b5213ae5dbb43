"""Property-based fuzzing of the ACS with hypothesis: valid responses from the pysaml2 IdP,
mutated at random, posted over the app. Two properties:

* whatever the bytes, the answer is never a 500;
* when the signed content of the assertion changed, no authorization code is ever issued.

The budget comes from the hypothesis profile (tests/conftest.py: 500 examples per property and
database, the same examples every run in CI; 25 in the fast lane); raise it locally with
``FUZZ_EXAMPLES=5000 scripts/test tests/attacks/test_fuzz.py``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from tests.attacks import xml_tools as x
from tests.attacks.conftest import Attack

FUZZ = settings(suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])
if "FUZZ_EXAMPLES" in os.environ:
    FUZZ = settings(FUZZ, max_examples=int(os.environ["FUZZ_EXAMPLES"]))

ALLOWED = {302, 400, 404, 413}

byte_edits = st.lists(
    st.tuples(st.sampled_from(["flip", "insert", "delete", "duplicate"]),
              st.floats(min_value=0, max_value=1, allow_nan=False),
              st.binary(min_size=1, max_size=8)),
    min_size=1, max_size=6)


def _apply(data: bytes, edits: list[tuple[str, float, bytes]]) -> bytes:
    buffer = bytearray(data)
    for kind, where, payload in edits:
        at = int(where * (len(buffer) - 1)) if buffer else 0
        if kind == "flip" and buffer:
            buffer[at] ^= payload[0] or 1
        elif kind == "insert":
            buffer[at:at] = payload
        elif kind == "delete":
            del buffer[at:at + len(payload)]
        else:
            buffer[at:at] = buffer[at:at + 16 * len(payload)]
    return bytes(buffer)


@FUZZ
@given(edits=byte_edits)
def test_random_bytes_never_cause_a_500(attack: Attack, edits: list) -> None:  # type: ignore[type-arg]
    if not hasattr(attack, "_fuzz_base"):
        attack._fuzz_base = etree.tostring(attack.fresh()[1])  # type: ignore[attr-defined]
    data = _apply(attack._fuzz_base, edits)  # type: ignore[attr-defined]
    response = attack.post(data)
    assert response.status_code in ALLOWED, response.get_data(as_text=True)


signed_edits = st.tuples(
    st.sampled_from(["text", "attribute", "delete", "duplicate", "rename"]),
    st.integers(min_value=0, max_value=10_000),
    # XML 1.0 text: no control characters or lone surrogates (lxml refuses to hold them).
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=0, max_size=12))


def _signed_elements(root: etree._Element) -> list[etree._Element]:
    assertion = x.assertion(root)
    signature = x.signature_of(assertion)
    excluded = set(signature.iter()) if signature is not None else set()
    return [e for e in assertion.iter() if e not in excluded]


def _mutate_signed(root: etree._Element, edit: tuple[str, int, str]) -> bool:
    """Change the signed assertion content; return False if the edit changed nothing."""
    kind, pick, value = edit
    elements = _signed_elements(root)
    element = elements[pick % len(elements)]
    if kind == "text":
        if (element.text or "") == value or len(element):
            return False
        element.text = value
    elif kind == "attribute":
        names = sorted(element.attrib)
        if not names:
            return False
        name = names[pick % len(names)]
        if element.get(name) == value:
            return False
        element.set(name, value)
    elif kind == "delete":
        if element is x.assertion(root):
            return False
        element.getparent().remove(element)
    elif kind == "duplicate":
        if element is x.assertion(root):
            return False
        element.addnext(etree.fromstring(etree.tostring(element)))
    else:
        element.tag = element.tag + "x"
    return True


@FUZZ
@given(edit=signed_edits)
def test_changed_signed_content_never_gets_a_code(attack: Attack, edit: tuple[str, int, str]) -> None:
    if not hasattr(attack, "_fuzz_base"):
        attack._fuzz_base = etree.tostring(attack.fresh()[1])  # type: ignore[attr-defined]
    root = etree.fromstring(attack._fuzz_base)  # type: ignore[attr-defined]
    if not _mutate_signed(root, edit):
        return
    before = attack.issued()
    response = attack.post(root)
    assert 400 <= response.status_code < 500, response.get_data(as_text=True)
    assert attack.issued() == before
