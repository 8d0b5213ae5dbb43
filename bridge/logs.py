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
import math
import sys
import time
from typing import Any

from bridge.patterns import LinearPattern, encodable

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("bridge_request_id",
                                                                          default=None)

# Log lines carry values a request chose (observed SAML values, parameters), so these run on the
# linear-time engine: with Python's re, "eyJ-" or "-----BEGIN A-----" repeated made the masking
# quadratic in the line's length. No word boundary before a token: in a line's JSON a letter or
# digit can stand right before one (an escaped newline, "\\neyJ…"; a URL-encoded "=", "%3DeyJ…"),
# and a boundary there let a JWT's header and claims through.
# Each pattern runs only on text that could hold a match: one with the literal text every match
# of it starts with, and one long enough for a run of 40. Most lines (every access log line)
# hold neither, and an RE2 call per pattern and value cost about 10 µs a value, 50 µs a line.
_SECRETS = [
    (LinearPattern(r"(?s)-----BEGIN [A-Z ]+-----.*?-----END [A-Z ]+-----", syntax="re2"),
     "[pem]", "-----BEGIN ", 0),
    # Runs of base64 before the narrower patterns, so none of them can cut a long secret into
    # pieces too short to mask (base64 of JSON starts "eyJ" and may hold a '/'; a random secret
    # may hold "eyJ" or "bat_"). URL-encoded runs included, once or more (a URL inside a URL): a
    # '+', '/' or '=' sent as %2B, %2F or %3D, or %252F and so on, would otherwise split one.
    (LinearPattern(r"(?:[A-Za-z0-9+/_-]|%(?:25)*2[BbFf]){40,}(?:%(?:25)*3[Dd]){0,2}={0,2}",
                   syntax="re2"), "[redacted]", "", 40),
    # Admin tokens before JWTs: a JWT-shaped match that starts inside one would leave its first
    # characters, too few for this pattern afterwards.
    (LinearPattern(r"bat_[A-Za-z0-9_-]{20,}", syntax="re2"), "[admin-token]", "bat_", 0),
    (LinearPattern(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*", syntax="re2"),
     "[jwt]", "eyJ", 0),
    # A JWT's part on its own (base64url of JSON: '{"' is "eyJ"): what a token glued right after
    # a fake one keeps once the fake's match took its header, or a token cut or split.
    (LinearPattern(r"eyJ[A-Za-z0-9_-]{8,}", syntax="re2"), "[jwt]", "eyJ", 0),
]
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
# Values that come back from JSON as they went in: when masking changed nothing in one, the value
# itself goes into the entry (what json.loads would rebuild is equal, and written the same). Exact
# types only: a subclass or a proxy that claims one may write itself otherwise the second time.
_PLAIN = (str, int, float, bool, type(None))
# What json.dumps(value, default=str) uses, made once: json.dumps builds a new encoder whenever it
# is given an argument of its own, about 3 µs a value.
_JSON = json.JSONEncoder(default=str)
# Numbers in a line's fields (a status, a duration): a float is written in at most 24 characters
# ("-2.2250738585072014e-308", "Infinity"), an int below this in at most 39, sign included; no
# pattern matches so short a text without a marker, and none of these holds one.
_SHORT_INT = 10**38


def redact(text: str) -> str:
    # The text itself, not what a str subclass says of its length or contents; and lone
    # surrogates replaced, as the patterns would (they read UTF-8), whether or not one runs.
    text = encodable(str.__str__(text)) if type(text) is not str or not text.isascii() else text
    for pattern, replacement, marker, shortest in _SECRETS:
        if len(text) >= shortest and marker in text:
            text = pattern.sub(replacement, text)
    return text


def _masked_value(value: Any) -> Any:
    kind = type(value)
    if kind is float or kind is bool or value is None or (
            kind is int and -_SHORT_INT < value < _SHORT_INT):
        return value  # written as fewer than 40 digits, signs and letters: nothing to mask
    dumped = _JSON.encode(value)
    masked = redact(dumped)
    if masked == dumped and type(value) in _PLAIN:
        return value
    try:
        return json.loads(masked)
    except ValueError:
        # A mask took the place of a number, or joined two values (a PEM block across them):
        # the masked text as a string, so the line is still written, and written masked.
        return masked


def _timestamp(created: float) -> str:
    """``datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")``: the same
    text, with the date and time up to the second written once a second (every request's line
    asks; a datetime per line cost about 10 µs of a refresh)."""
    fraction, whole = math.modf(created)
    # As fromtimestamp rounds: to the microsecond, half to even, carrying into the second.
    micro = round(fraction * 1e6)
    second = int(whole)
    if micro >= 1_000_000:
        micro -= 1_000_000
        second += 1
    elif micro < 0:
        micro += 1_000_000
        second -= 1
    global _SECOND
    cached_second, prefix = _SECOND
    if cached_second != second:
        prefix = dt.datetime.fromtimestamp(second, dt.UTC).isoformat()[:19]
        _SECOND = (second, prefix)  # one assignment: threads read either pair whole
    return f"{prefix}.{micro // 1000:03d}+00:00"


# The second last written, and its date and time as text.
_SECOND: tuple[int | None, str] = (None, "")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "request_id": request_id.get(),
            "msg": redact(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = _masked_value(value)
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return _JSON.encode(entry)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        rid = request_id.get()
        prefix = f"[{rid}] " if rid else ""
        return redact(prefix + super().format(record))


class MaskedStreamHandler(logging.StreamHandler):
    """A stream handler whose report of a line it could not write names the logging call, not
    its message and arguments: logging's own report prints both as they are, unmasked."""

    def handleError(self, record: logging.LogRecord) -> None:
        if not logging.raiseExceptions:
            return
        error = sys.exc_info()[1]
        try:
            self.stream.write(json.dumps({
                "level": "error", "logger": "bridge.logs", "request_id": request_id.get(),
                "msg": "a log line could not be written",
                "error": type(error).__name__ if error else None,
                "source_logger": record.name, "source": f"{record.pathname}:{record.lineno}",
            }) + self.terminator)
            self.flush()
        except Exception:  # noqa: BLE001, S110 - nowhere left to report to
            pass


def configure(fmt: str = "json", level: str = "INFO") -> None:
    """Send the bridge's logs (and the web server's) to stderr in ``fmt``, once per process."""
    handler = MaskedStreamHandler(sys.stderr)
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


def log_access(logger: logging.Logger, method: str, path: str, status: int,
               duration_ms: float) -> None:
    """One request's access line: ``logger.info`` with the request's method, path, status and
    duration as fields.

    Every request but the probes writes one, and through ``logging`` it cost a refresh about a
    tenth of its CPU: a record with some twenty attributes (the caller's frame and file, the
    process id through a system call, the thread's name), its dispatch through the loggers, and
    a formatter that reads every attribute back. While logging is configured as ``configure``
    leaves it, the line is written to its handler directly, byte for byte what that path writes
    (tests/test_logs.py compares the two). Whenever anything else would take part (a filter, a
    handler, a level, a logger or record class, or a method of logging's that an operator or a
    library replaced), the line goes through ``logging`` as any other
    (docs/decisions/0035-access-line-written-directly.md)."""
    if logger.disabled or not logger.isEnabledFor(logging.INFO):
        return
    handler = _sole_bridge_handler(logger)
    if handler is None:
        logger.info("%s %s %s", method, path, status,
                    extra={"status": status, "method": method, "path": path,
                           "duration_ms": duration_ms})
        return
    created = time.time()
    line = _JSON.encode({
        "ts": _timestamp(created), "level": "info", "logger": logger.name,
        "request_id": request_id.get(), "msg": redact(f"{method} {path} {status}"),
        "status": _masked_value(status), "method": _masked_value(method),
        "path": _masked_value(path), "duration_ms": _masked_value(duration_ms),
    }) + handler.terminator
    handler.acquire()
    try:
        handler.stream.write(line)
        handler.flush()
    except RecursionError:
        raise
    except Exception:  # noqa: BLE001 - reported as logging reports a line it could not write
        # The caller's file and line, as logging's record would name them.
        path_name, line_number, _, _ = logger.findCaller(stacklevel=2)
        handler.handleError(logger.makeRecord(logger.name, logging.INFO, path_name, line_number,
                                              "%s %s %s", (method, path, status), None))
    finally:
        handler.release()


def _sole_bridge_handler(logger: logging.Logger) -> MaskedStreamHandler | None:
    """The handler ``configure`` installed, when it is the only thing ``logger.info`` would run:
    no filter on the logger or the handler, no handler on any logger between them, every logger
    propagating, logging's own logger and record classes and level name, and none of the
    methods that ``logger.info`` runs replaced (``_unpatched``). None otherwise."""
    if (logger.filters or type(logger) is not logging.Logger
            or logging.getLogRecordFactory() is not logging.LogRecord
            or logging.getLevelName(logging.INFO) != "INFO"
            or not _LOGGER_METHODS.isdisjoint(logger.__dict__)):
        return None
    current = logger
    while current.parent is not None:
        if current.handlers or not current.propagate:
            return None
        current = current.parent
    if len(current.handlers) != 1:
        return None
    handler = current.handlers[0]
    formatter = handler.formatter
    if (type(handler) is not MaskedStreamHandler or not getattr(handler, "_bridge", False)
            or handler.filters or handler.level > logging.INFO
            or type(formatter) is not JsonFormatter
            or not _HANDLER_METHODS.isdisjoint(handler.__dict__)
            or not _FORMATTER_METHODS.isdisjoint(formatter.__dict__)
            or _methods_in_use() != _UNPATCHED):
        return None
    return handler


# The methods ``logger.info`` runs for a line, by class; the direct path stands in for them only
# while each is the one logging (or this module) defines. Libraries replace some: sentry-sdk's
# logging integration replaces Logger.callHandlers, ddtrace wraps Logger.makeRecord to add trace
# ids. An operator may set one on an instance (a handler's ``filter``, a formatter's ``format``).
_LOGGER_METHODS = frozenset({"info", "isEnabledFor", "_log", "findCaller", "makeRecord",
                             "handle", "filter", "callHandlers"})
_HANDLER_METHODS = frozenset({"handle", "filter", "acquire", "release", "emit", "format",
                              "flush", "handleError"})
_FORMATTER_METHODS = frozenset({"format", "formatException", "formatTime", "formatMessage",
                                "formatStack", "usesTime"})


def _methods_in_use() -> tuple[Any, ...]:
    logger, record, handler, formatter = (logging.Logger, logging.LogRecord, MaskedStreamHandler,
                                          JsonFormatter)
    return (logger.info, logger.isEnabledFor, logger._log, logger.findCaller, logger.makeRecord,
            logger.handle, logger.filter, logger.callHandlers, record.__init__,
            record.getMessage, handler.handle, handler.filter, handler.acquire, handler.release,
            handler.emit, handler.format, handler.flush, handler.handleError, formatter.format,
            formatter.formatException)


def _unpatched(methods: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """``methods`` when every one is logging's own or this module's (its code in their files),
    None when one was replaced before this module was imported: then never the direct path."""
    shipped = {logging.__file__, __file__}
    for method in methods:
        code = getattr(method, "__code__", None)
        if code is None or code.co_filename not in shipped:
            return None
    return methods


_UNPATCHED = _unpatched(_methods_in_use())
