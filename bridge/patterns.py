"""Regular expressions that run on text an IdP, a client or a request controls.

Python's ``re`` backtracks: a pattern such as ``([a-z]+-?)+-admins`` takes time exponential in the
length of a value that almost matches, so whoever chooses the value (a user naming their own groups
at the IdP, a client choosing a parameter) chooses how long a worker is busy. Such patterns run on
RE2 instead, which guarantees time linear in the text (a DFA/NFA simulation, no backtracking) and
bounds each compiled expression's memory (``max_mem``). RE2 refuses what it cannot run in linear
time (backreferences, lookaround, atomic groups, possessive quantifiers), so such patterns are
refused where they are written: when a mapping is saved through the admin API, or at start-up for
files.

Patterns are written in Python's syntax, as before. Where the two syntaxes read the same text
differently, the pattern is rewritten to keep Python's meaning, or refused when RE2 cannot express
it:

* ``\\d \\w \\s`` and their negations are Unicode-aware in Python, ASCII-only in RE2: rewritten to
  Unicode classes (``\\p{Nd}``, ``[\\p{L}\\p{N}_]``, Python's whitespace set). ``\\W`` and ``\\S``
  inside a bracket cannot be expressed and are refused.
* ``\\b`` and ``\\B`` are ASCII word boundaries in RE2: refused (``[\\b]``, a backspace, is kept).
* ``\\Z`` (Python's end of text) is RE2's ``\\z``; ``\\uXXXX`` / ``\\UXXXXXXXX`` become ``\\x{...}``.
* ``{,n}`` (Python: 0 to n) is literal text in RE2: rewritten to ``{0,n}``.
* the inline flag ``U`` means ungreedy in RE2 (a no-op in Python): refused.
* ``\\1``..``\\9`` (backreferences), ``\\C`` (any byte) and ``\\Q..\\E``: refused.
"""

from __future__ import annotations

import re
from typing import Any

import re2

ENGINE = "re2"
MAX_PATTERN = 256
# Memory RE2 may use per compiled expression; a pattern that needs more is refused at compile time
# (and a DFA that outgrows it falls back to the NFA: slower, still linear).
MAX_MEMORY = 8 << 20
# The size of the compiled program (RE2's ProgramSize) bounds the work per character of text when
# the DFA cannot cache its states and RE2 falls back to simulating the NFA. Counted repetitions of
# Unicode classes multiply it: ``[\w.-]{1,100}`` is 134,512 steps and took 120 ms per 4,096
# characters of mixed scripts, ``[\w.-]{1,30}`` is 40,362 and took 3 ms (the refused-pattern
# tests hold both figures).
MAX_PROGRAM = 50_000

# Python's \s for str patterns (str.isspace()), spelled for RE2.
_SPACE = (r"\t\n\x{0b}\f\r\x{1c}-\x{1f} \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}"
          r"\x{202f}\x{205f}\x{3000}")
_WORD = r"\p{L}\p{N}_"  # a superset of Python's \w (isalnum() or "_"), never a subset
_OUTSIDE = {"d": r"\p{Nd}", "D": r"\P{Nd}", "w": f"[{_WORD}]", "W": f"[^{_WORD}]",
            "s": f"[{_SPACE}]", "S": f"[^{_SPACE}]", "Z": r"\z"}
_INSIDE = {"d": r"\p{Nd}", "D": r"\P{Nd}", "w": _WORD, "s": _SPACE, "b": r"\x{08}"}
_REFUSED = {
    "b": "word boundaries (\\b) are ASCII-only in the linear-time engine; write the boundary "
         "explicitly",
    "B": "word boundaries (\\B) are ASCII-only in the linear-time engine; write the boundary "
         "explicitly",
    "C": "\\C (any byte) is not supported",
    "Q": "\\Q...\\E quoting is not supported; escape each character",
}
_FLAGS = re.compile(r"\(\?([A-Za-z-]*)[:)]")
_EMPTY_LOWER = re.compile(r"\{,(\d*)\}")
_HEX = re.compile(r"[0-9A-Fa-f]+")
_SURROGATES = re.compile("[\ud800-\udfff]")


class PatternRefused(ValueError):
    """The pattern cannot run on the linear-time engine (or means something else there).
    ``size``: its compiled program's size when it was refused for that size (0 otherwise)."""

    def __init__(self, message: str, size: int = 0) -> None:
        super().__init__(message)
        self.size = size


def translate(pattern: str) -> str:
    """Python regular-expression syntax to RE2 syntax with the same meaning, or PatternRefused."""
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    previous = ""  # the previous token inside [...], as written ("" at the start of the class)
    while i < n:
        char = pattern[i]
        if char == "\\":
            if i + 1 >= n:
                raise PatternRefused("a trailing backslash")
            letter = pattern[i + 1]
            if letter in "uU":
                width = 4 if letter == "u" else 8
                digits = pattern[i + 2:i + 2 + width]
                if len(digits) != width or not _HEX.fullmatch(digits):
                    raise PatternRefused(f"\\{letter} needs {width} hexadecimal digits")
                out.append(f"\\x{{{digits}}}")
                previous = pattern[i:i + 2 + width]
                i += 2 + width
                continue
            if letter in "xpP" and pattern[i + 2:i + 3] == "{":
                end = pattern.find("}", i + 3)
                if end < 0:
                    raise PatternRefused(f"\\{letter}{{ without a closing brace")
                out.append(pattern[i:end + 1])
                previous = pattern[i:end + 1]
                i = end + 1
                continue
            if in_class:
                if letter in "WS":
                    raise PatternRefused(f"\\{letter} inside [...] is not supported; use [^...]")
                if letter in "dDws" and (previous == "-" or (
                        pattern[i + 2:i + 3] == "-" and pattern[i + 3:i + 4] != "]")):
                    raise PatternRefused(f"\\{letter} cannot be the end of a range")
                previous = pattern[i:i + 2]
                out.append(_INSIDE.get(letter, "\\" + letter))
            else:
                if letter in _REFUSED:
                    raise PatternRefused(_REFUSED[letter])
                if letter in "123456789":
                    raise PatternRefused("backreferences are not supported")
                out.append(_OUTSIDE.get(letter, "\\" + letter))
            i += 2
            continue
        if in_class:
            if char == "[" and pattern[i + 1:i + 2] == ":":  # a POSIX class such as [:alpha:]
                end = pattern.find(":]", i + 2)
                if end >= 0:
                    out.append(pattern[i:end + 2])
                    previous = pattern[i:end + 2]
                    i = end + 2
                    continue
            if char == "]":
                in_class = False
            # A "-" first in the class is a literal, anywhere else a range.
            previous = char if previous or char != "-" else "-literal"
            out.append(char)
            i += 1
            continue
        if char == "[":
            in_class, previous = True, ""
            out.append(char)
            i += 1
            # A "]" first (after an optional "^") is a literal in both syntaxes.
            if pattern[i:i + 1] == "^":
                out.append("^")
                i += 1
            if pattern[i:i + 1] == "]":
                out.append("]")
                previous = "]"
                i += 1
            continue
        if char == "(":
            flags = _FLAGS.match(pattern, i)
            if flags and "U" in flags.group(1):
                raise PatternRefused("the inline flag U means ungreedy in the linear-time engine")
        if char == "{":
            empty_lower = _EMPTY_LOWER.match(pattern, i)
            if empty_lower:
                out.append(f"{{0,{empty_lower.group(1)}}}")
                i = empty_lower.end()
                continue
        out.append(char)
        i += 1
    return "".join(out)


def _options() -> Any:
    options = re2.Options()
    options.max_mem = MAX_MEMORY
    options.log_errors = False  # a refused pattern is reported to the admin, not on stderr
    return options


def encodable(value: str) -> str:
    """``value`` with each lone surrogate (possible in JSON, never in XML) replaced by U+FFFD:
    RE2 reads UTF-8, which cannot encode one."""
    return _SURROGATES.sub("\ufffd", value)


class LinearPattern:
    """A compiled pattern that runs in time linear in the text it is applied to."""

    engine = ENGINE

    def __init__(self, source: str, *, syntax: str = "python") -> None:
        """``source`` in Python's syntax (admins' patterns), or in RE2's own (``syntax="re2"``,
        for the bridge's fixed patterns)."""
        if not source or len(source) > MAX_PATTERN:
            raise PatternRefused(f"must be 1 to {MAX_PATTERN} characters")
        self.source = source
        self.translated = translate(source) if syntax == "python" else source
        try:
            self._compiled = re2.compile(self.translated, _options())
        except re2.error as error:
            reason = error.args[0] if error.args else error
            if isinstance(reason, bytes):
                reason = reason.decode("utf-8", "replace")
            raise PatternRefused(
                f"{reason}; patterns run on a linear-time engine (RE2), which has no "
                "backreferences, lookaround, atomic groups or possessive quantifiers") from None
        size = self._compiled.programsize
        if size > MAX_PROGRAM:
            raise PatternRefused(
                f"too large for the linear-time engine ({size:,} steps, at most {MAX_PROGRAM:,}): "
                "a counted repetition of a large class such as \\w{1,100} multiplies its size; "
                "use + or *, a smaller count, or an ASCII class such as [A-Za-z0-9_]", size)
        self.size: int = size
        self.groups: int = self._compiled.groups

    def __repr__(self) -> str:
        return f"LinearPattern({self.source!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LinearPattern) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)

    def _call(self, method: str, *args: Any) -> Any:
        text = args[-1]
        try:
            return getattr(self._compiled, method)(*args)
        except UnicodeEncodeError:
            return getattr(self._compiled, method)(*args[:-1], encodable(text))

    def fullmatch(self, text: str) -> bool:
        return self._call("fullmatch", text) is not None

    def extract(self, text: str) -> str | None:
        """The first group of the leftmost match (the whole match without groups), or None."""
        found = self._call("search", text)
        if found is None:
            return None
        value = found.group(1) if self.groups else found.group(0)
        return value if isinstance(value, str) else None

    def sub(self, replacement: str, text: str) -> str:
        """Every match replaced by ``replacement``, taken literally (no group references)."""
        return str(self._call("sub", lambda _match: replacement, text))
