"""Structured logs: one JSON object per line, each with the request id of the request it belongs
to, and nothing secret in it.

Code never logs tokens, codes, cookies, SAML messages or keys; as a second line of defence the
formatter masks anything shaped like one (JWTs, admin tokens, long base64 runs, PEM blocks).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import sys
from typing import Any

from bridge.patterns import LinearPattern

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("bridge_request_id",
                                                                          default=None)

# Log lines carry values a request chose (observed SAML values, parameters), so these run on the
# linear-time engine: with Python's re, "eyJ-" or "-----BEGIN A-----" repeated made the masking
# quadratic in the line's length. RE2 syntax (its \b is an ASCII word boundary, enough here).
# Each pattern runs only on text that could hold a match: one with the literal text every match
# of it starts with, and one long enough for a run of 40. Most lines (every access log line)
# hold neither, and four RE2 calls per value cost about 10 µs a value, 50 µs a line.
_SECRETS = [
    (LinearPattern(r"(?s)-----BEGIN [A-Z ]+-----.*?-----END [A-Z ]+-----", syntax="re2"),
     "[pem]", "-----BEGIN ", 0),
    (LinearPattern(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*", syntax="re2"),
     "[jwt]", "eyJ", 0),
    (LinearPattern(r"\bbat_[A-Za-z0-9_-]{20,}", syntax="re2"), "[admin-token]", "bat_", 0),
    (LinearPattern(r"[A-Za-z0-9+/_-]{40,}={0,2}", syntax="re2"), "[redacted]", "", 40),
]
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
# Values that come back from JSON as they went in: when masking changed nothing in one, the value
# itself goes into the entry (what json.loads would rebuild is equal, and written the same).
_PLAIN = (str, int, float, bool, type(None))
# What json.dumps(value, default=str) uses, made once: json.dumps builds a new encoder whenever it
# is given an argument of its own, about 3 µs a value.
_JSON = json.JSONEncoder(default=str)


def redact(text: str) -> str:
    for pattern, replacement, marker, shortest in _SECRETS:
        if len(text) >= shortest and marker in text:
            text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "request_id": request_id.get(),
            "msg": redact(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                dumped = _JSON.encode(value)
                masked = redact(dumped)
                entry[key] = (value if masked == dumped and isinstance(value, _PLAIN)
                              else json.loads(masked))
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return _JSON.encode(entry)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        rid = request_id.get()
        prefix = f"[{rid}] " if rid else ""
        return redact(prefix + super().format(record))


def configure(fmt: str = "json", level: str = "INFO") -> None:
    """Send the bridge's logs (and the web server's) to stderr in ``fmt``, once per process."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_bridge", False):
            root.removeHandler(existing)
    handler._bridge = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # Alembic announces its dialect and DDL mode at INFO every time a schema revision is read
    # (each CLI command, each worker's start): noise. `bridge db upgrade` reports what it did.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
