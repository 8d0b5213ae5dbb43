"""Structured logs: JSON lines with the request id, and the secret scan that guards them."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import io
import json
import logging
import re
import sys
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge import logs
from bridge.logs import JsonFormatter, redact
from tests import leaks
from tests.helpers import Browser


def test_every_request_logs_one_json_line_with_its_request_id(client: FlaskClient) -> None:
    before = len(leaks.LINES)
    response = client.get("/.well-known/openid-configuration?x=secret-query-value")
    request_id = response.headers["X-Request-Id"]
    lines = [json.loads(line) for line in leaks.LINES[before:]]
    access = [line for line in lines if line["logger"] == "bridge.access"]
    assert len(access) == 1
    assert access[0]["request_id"] == request_id
    assert access[0]["path"] == "/.well-known/openid-configuration"
    assert access[0]["status"] == 200 and access[0]["duration_ms"] >= 0
    assert "secret-query-value" not in json.dumps(lines)


def test_refusals_are_logged_under_the_id_the_client_sees(client: FlaskClient) -> None:
    before = len(leaks.LINES)
    response = client.post("/saml/dev/acs", data={"SAMLResponse": "%%%"},
                           headers={"Accept": "application/json"})
    error_id = response.get_json()["error_id"]
    refusal = [json.loads(line) for line in leaks.LINES[before:]
               if "saml_malformed" in line]
    assert refusal and all(line["request_id"] == error_id for line in refusal)


def test_redaction_masks_what_looks_secret() -> None:
    jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
    text = redact(f"token {jwt} admin bat_{'A' * 43} saml {'PHNhbWxwOlJlc3BvbnNl' * 4} "
                  "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY----- plain words")
    assert jwt not in text and "bat_AAAA" not in text and "PHNhbWxw" not in text
    assert "MIIE" not in text and "plain words" in text


# Whole secrets of each shape, near misses, and the pieces they are made of.
_FRAGMENTS = ["eyJZZZZZZZZ.bbbbbbbb.c", "eyJabc.defghijkl.", "-----BEGIN A B-----x\\ny-----END A-----",
              "-----BEGIN a-----", "bat_" + "Z" * 20, "bat_" + "Z" * 19, "b" * 40, "b" * 39,
              "-----BEGIN ", "-----END ", "-----", "eyJ", "abcdefgh", ".", "bat_", "=", " ",
              "/", "é", '"', "-", "POST /token", "\ud800", "%2F", "%3d", "%2", "%25", "b" * 13]


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from(_FRAGMENTS) | st.text(max_size=8), max_size=16))
def test_redaction_skips_only_patterns_that_cannot_match(parts: list[str]) -> None:
    """``redact`` runs a pattern only on text that holds the literal text each of its matches
    starts with, or that is long enough for a match: it masks exactly what running every
    pattern does."""
    text = "".join(parts)
    every_pattern = text
    for pattern, replacement, _marker, _shortest in logs._SECRETS:
        every_pattern = pattern.sub(replacement, every_pattern)
    assert redact(text) == every_pattern


@pytest.mark.parametrize("before", ["\n", "%3D", "x", "_", "9"])
def test_a_token_is_masked_whatever_stands_right_before_it(before: str) -> None:
    """In a line's JSON an escaped newline puts a letter right before a token, a URL-encoded
    "=" a digit: a word boundary before the pattern let the token's header and claims through."""
    jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln"
    admin = "bat_" + "A" * 24
    line = _line(msg=f"a{before}{jwt} b{before}{admin}", detail=f"first\n{jwt}")
    text = json.dumps(line)
    assert "eyJhbGci" not in text and "eyJzdWIi" not in text and "bat_AAAA" not in text
    assert line["detail"] == "first\n[jwt]"


def test_a_token_glued_after_a_fake_one_keeps_nothing_of_its_claims() -> None:
    """A fake token's last part would take in the real one's header, leaving its claims."""
    jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9." + "S" * 86
    fake = "eyJAAAAAAAA.BBBBBBBB."
    line = _line(msg="saw %s", args=(f"n1{fake}{jwt}",), detail=f"n\n{fake}{jwt}")
    assert "eyJzdWIi" not in json.dumps(line) and "eyJhbGci" not in json.dumps(line)


def test_an_admin_token_is_masked_whole_when_a_token_shape_starts_inside_it() -> None:
    text = redact("token=bat_Q7xK2mP9aZeyJr5TgH8wLqNv3BnM6cXdFa1.internal1.log")
    assert text == "token=[admin-token].internal1.log"
    longer = redact("token=bat_Q7xK2mP9aZeyJr5TgH8wLqNv3BnM6cXdFa1ZZZZZ.internal1.log")
    assert longer == "token=[redacted].internal1.log"


def test_a_long_secret_is_masked_whole_whatever_token_shape_it_holds() -> None:
    """A narrower pattern run first would cut a long secret into pieces too short to mask:
    base64 of JSON starts "eyJ" and may hold a '/', and a random secret may hold "eyJ"."""
    password_in_json = "eyJ1IjoiYWxpY2UiLCJwdyI6ImE/Q29ycmVjdEhvcnNlQmF0dGVyeVN0YXBsZTkifQ=="
    assert redact(f"relay_state={password_in_json}") == "relay_state=[redacted]"
    assert redact("client_secret=Xq3Lm9TzR1vK8pW2nB5ceyJkP2oQa7Zr4Wd1Ty8Hu3I") == \
        "client_secret=[redacted]"


def test_url_encoded_base64_is_masked_whole() -> None:
    """A '+', '/' or '=' URL-encoded (%2B, %2F, %3D) must not split a secret into pieces short
    enough to be kept."""
    secret = base64.b64encode(bytes(range(256)) * 2).decode()
    encoded = urllib.parse.quote(secret, safe="")
    assert "%2B" in encoded and "%2F" in encoded and encoded.endswith("%3D")
    text = redact(f"redirected to https://bucket.example/x?X-Amz-Security-Token={encoded} ok")
    assert text == "redirected to https://bucket.example/x?X-Amz-Security-Token=[redacted] ok"
    # Encoded again (a URL inside a URL's query): %252F. Nothing of the secret is left, only
    # the URL around it.
    twice = urllib.parse.quote(f"https://bucket.example/x?token={encoded}", safe="")
    assert "%252F" in twice
    assert redact(f"next={twice}") == "next=https%3A%2F%2Fbucket.example%2Fx%3Ftoken%[redacted]"


def test_a_log_line_without_secrets_keeps_its_values_and_types() -> None:
    record = logging.makeLogRecord({
        "name": "bridge.access", "msg": "%s %s %s", "args": ("POST", "/token", 200),
        "levelname": "INFO", "status": 200, "method": "POST", "path": "/token",
        "duration_ms": 1.25, "flag": True, "nothing": None, "items": ("a", 1),
        "secret": "key " + "Q" * 48})
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "POST /token 200"
    assert (line["status"], line["method"], line["path"]) == (200, "POST", "/token")
    assert (line["duration_ms"], line["flag"], line["nothing"]) == (1.25, True, None)
    assert line["items"] == ["a", 1] and line["secret"] == "key [redacted]"


JWT = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


def _line(**fields: object) -> dict[str, object]:
    record = logging.makeLogRecord({"name": "t", "levelname": "INFO", "msg": "m", **fields})
    return dict(json.loads(JsonFormatter().format(record)))


def test_masking_reads_the_text_itself_whatever_a_str_subclass_says_of_it() -> None:
    class Liar(str):
        def __contains__(self, _other: object) -> bool:
            return False

        def __len__(self) -> int:
            return 0

        def __str__(self) -> str:
            return self

    line = _line(msg=Liar(f"token {JWT} admin bat_{'A' * 30} run {'Q' * 50}"))
    assert line["msg"] == "token [jwt] admin [admin-token] run [redacted]"


def test_lone_surrogates_are_replaced_in_every_line() -> None:
    assert _line(msg="x\ud800y")["msg"] == "x\ufffdy"
    assert redact("failed: \udcff") == "failed: \ufffd"


def test_a_value_is_written_as_it_was_masked_even_if_it_claims_a_plain_type() -> None:
    class Proxy:
        calls = 0

        @property  # type: ignore[misc]
        def __class__(self) -> type:
            return int

        def __str__(self) -> str:
            Proxy.calls += 1
            return "ok" if Proxy.calls == 1 else JWT

    assert isinstance(Proxy(), int)
    line = _line(value=Proxy())
    assert line["value"] == "ok" and JWT not in json.dumps(line)


def test_a_value_that_masking_leaves_invalid_is_written_as_masked_text() -> None:
    assert _line(number=10**40)["number"] == "[redacted]"
    across = _line(pair={"-----BEGIN X-----": 1, "y": "-----END X-----"})["pair"]
    assert isinstance(across, str) and "[pem]" in across


def test_a_line_that_cannot_be_written_is_reported_without_its_arguments(
        capsys: pytest.CaptureFixture[str]) -> None:
    stream = io.StringIO()
    handler = logs.MaskedStreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    secret = "the-argument-that-must-not-be-printed"
    handler.handle(logging.makeLogRecord({"name": "t", "levelname": "INFO", "msg": "%d",
                                          "args": (secret,)}))
    report = json.loads(stream.getvalue())
    assert report["msg"] == "a log line could not be written" and report["error"] == "TypeError"
    assert secret not in stream.getvalue() + capsys.readouterr().err


def test_the_scan_finds_a_secret_in_a_log_line() -> None:
    secret = "a-secret-value-that-must-never-be-logged"
    record = logging.makeLogRecord({"msg": "oops %s", "args": (secret,), "levelname": "INFO"})
    leaks.SECRETS.add(secret)
    leaks.LINES.append(JsonFormatter().format(record).replace("[redacted]", secret))
    try:
        assert leaks.leaked() == [secret[:12] + "…"]
    finally:
        leaks.SECRETS.discard(secret)
        leaks.LINES.pop()


def test_a_refusal_logs_at_most_a_bounded_line_whatever_the_sender_sent(
        browser: Browser, caplog: pytest.LogCaptureFixture) -> None:
    """Anyone with a login under way (one GET /authorize) may post a report of a failed login
    answering it (no assertion, no signature needed), and its refusal names the Destination it
    carried: 300 kB of it must not become 300 kB of log line per request."""
    login = browser.start(idp="dev")
    destination = "lorem ipsum " * 25_000  # words, which nothing masks as a secret
    report = (
        '<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_f1" '
        f'InResponseTo="{login.pending.request_id}" Version="2.0" '
        f'IssueInstant="2026-01-01T00:00:00Z" Destination="{destination}">'
        '<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Responder"/>'
        '</samlp:Status></samlp:Response>')
    with caplog.at_level(logging.WARNING):
        refused = browser.post_acs(base64.b64encode(report.encode()).decode())
    assert refused.get_json()["code"] == "saml_destination_mismatch"
    lines = [JsonFormatter().format(record) for record in caplog.records
             if "saml_destination_mismatch" in record.getMessage()]
    assert lines and max(len(line) for line in lines) <= 10_000
    assert "detail_cut" in lines[0]


def _masked_the_long_way(value: object) -> object:
    dumped = json.dumps(value, default=str)
    masked = redact(dumped)
    if masked == dumped:
        return value
    try:
        return json.loads(masked)
    except ValueError:
        return masked


@pytest.mark.parametrize("value", [
    0, 200, -1, True, False, None, 1.5, -0.0, float("inf"), float("-inf"), 1e308, -2.2250738585072014e-308,
    10**38 - 1, -(10**38) + 1, 10**38, -(10**38), 10**39 - 1, 10**39, -(10**39), 10**60,
    int("9" * 45), -int("9" * 40)])
def test_numbers_in_fields_are_masked_as_their_json_text_would_be(value: object) -> None:
    # Numbers skip the JSON round trip (every access line has two): only where it cannot matter.
    assert json.dumps(logs._masked_value(value)) == json.dumps(_masked_the_long_way(value))


@given(st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), st.none()))
def test_any_number_is_masked_as_its_json_text_would_be(value: object) -> None:
    assert json.dumps(logs._masked_value(value)) == json.dumps(_masked_the_long_way(value))


def _timestamp_the_long_way(created: float) -> str:
    return dt.datetime.fromtimestamp(created, dt.UTC).isoformat(timespec="milliseconds")


# Ends of seconds and of milliseconds, where fromtimestamp's rounding to the microsecond carries.
_EDGES = [0.0, 0.0000005, 0.0000004999, 0.9999995, 0.99999949, 0.0015, 0.0009995, 0.9995,
          1_764_892_799.9999995, 1_764_892_799.999999, 1_764_892_800.0000004, 4_102_444_799.9999999]


@pytest.mark.parametrize("created", _EDGES)
def test_a_line_s_time_is_written_as_datetime_writes_it_at_the_edges(created: float) -> None:
    logs._SECOND = (None, "")
    assert logs._timestamp(created) == _timestamp_the_long_way(created)


@given(st.floats(0, 2**34, allow_nan=False), st.lists(st.floats(-2.0, 2.0), max_size=4))
def test_a_line_s_time_is_written_as_datetime_writes_it(created: float,
                                                         steps: list[float]) -> None:
    # The text of the second is kept from one line to the next: a line in the same second, the
    # next one or an earlier one (a clock set back) gets its own.
    for moment in [created, *(max(0.0, created + step) for step in steps)]:
        assert logs._timestamp(moment) == _timestamp_the_long_way(moment)


# --- the access line, written directly while logging is as `configure` leaves it ---------------

@pytest.fixture
def configured() -> Iterator[io.StringIO]:
    """Logging as the WSGI entry point configures it (one JSON handler on the root, at INFO),
    writing into a buffer. The suite's own handlers (the leak capture, pytest's) are set aside
    in the test itself (``_alone``): pytest adds its own as each phase starts."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    for handler in saved[0]:
        root.removeHandler(handler)
    logs.configure("json", "INFO")
    stream = io.StringIO()
    root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])


@contextlib.contextmanager
def _alone() -> Iterator[None]:
    """Only the handler ``configure`` installed on the root, for the while."""
    root = logging.getLogger()
    others = [h for h in root.handlers if not getattr(h, "_bridge", False)]
    for handler in others:
        root.removeHandler(handler)
    try:
        yield
    finally:
        for handler in others:
            root.addHandler(handler)


def _through_logging(logger: logging.Logger, method: str, path: str, status: int,
                     duration_ms: float) -> None:
    """What the access line was before it was written directly: a plain logging call."""
    logger.info("%s %s %s", method, path, status, extra={
        "status": status, "method": method, "path": path, "duration_ms": duration_ms})


def _lines(stream: io.StringIO) -> list[str]:
    text = stream.getvalue()
    stream.seek(0)
    stream.truncate()
    return text.splitlines(keepends=True)


def _without_time(line: str) -> str:
    entry = json.loads(line)
    assert dt.datetime.fromisoformat(entry["ts"]).tzinfo is not None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", entry["ts"])
    return line.replace(entry["ts"], "<ts>", 1)


# The fixture is set up once for every example: each example reads (and empties) the buffer.
@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(["GET", "POST", "DELETE"]) | st.text(max_size=12),
       path=st.lists(st.sampled_from(_FRAGMENTS) | st.text(max_size=8), max_size=8).map("".join),
       status=st.integers(100, 599), duration=st.floats(0, 1e6))
def test_the_access_line_written_directly_is_the_line_logging_writes(
        configured: io.StringIO, method: str, path: str, status: int, duration: float) -> None:
    logger = logging.getLogger("bridge.access")
    token = logs.request_id.set("req-1")
    try:
        with _alone():
            logs.log_access(logger, method, "/" + path, status, duration)
            _through_logging(logger, method, "/" + path, status, duration)
    finally:
        logs.request_id.reset(token)
    direct, through = _lines(configured)
    assert _without_time(direct) == _without_time(through)


def test_the_direct_access_line_builds_no_log_record(configured: io.StringIO) -> None:
    logger = logging.getLogger("bridge.access")
    records = logging.LogRecord.__init__.__code__
    built: list[str] = []

    def watch(frame: Any, event: str, arg: object) -> None:
        # Watched, not replaced: a replaced method of logging's sends the line through logging.
        if event == "call" and frame.f_code is records:
            built.append(frame.f_code.co_name)

    with _alone():
        sys.setprofile(watch)
        try:
            logs.log_access(logger, "POST", f"/token/{JWT}", 200, 1.5)
        finally:
            sys.setprofile(None)
    assert built == []
    (line,) = _lines(configured)
    entry = json.loads(line)
    assert (entry["msg"], entry["path"]) == ("POST /token/[jwt] 200", "/token/[jwt]")
    assert (entry["level"], entry["logger"], entry["status"]) == ("info", "bridge.access", 200)


def _operator_changes() -> list[tuple[str, Callable[[logging.Logger], Callable[[], None]]]]:
    """Ways an operator or a library may reconfigure logging; each returns its undo."""

    def logger_filter(logger: logging.Logger) -> Callable[[], None]:
        def keep_errors_only(record: logging.LogRecord) -> bool:
            return record.levelno >= logging.ERROR
        logger.addFilter(keep_errors_only)
        return lambda: logger.removeFilter(keep_errors_only)

    def handler_filter(logger: logging.Logger) -> Callable[[], None]:
        handler = logging.getLogger().handlers[0]
        def tag(record: logging.LogRecord) -> bool:
            record.tagged = "yes"
            return True
        handler.addFilter(tag)
        return lambda: handler.removeFilter(tag)

    def handler_level(logger: logging.Logger) -> Callable[[], None]:
        handler = logging.getLogger().handlers[0]
        handler.setLevel(logging.WARNING)
        return lambda: handler.setLevel(logging.NOTSET)

    def logger_level(logger: logging.Logger) -> Callable[[], None]:
        logger.setLevel(logging.WARNING)
        return lambda: logger.setLevel(logging.NOTSET)

    def disabled_globally(logger: logging.Logger) -> Callable[[], None]:
        logging.disable(logging.INFO)
        return lambda: logging.disable(logging.NOTSET)

    def logger_disabled(logger: logging.Logger) -> Callable[[], None]:
        logger.disabled = True
        def undo() -> None:
            logger.disabled = False
        return undo

    def not_propagating(logger: logging.Logger) -> Callable[[], None]:
        logger.propagate = False
        def undo() -> None:
            logger.propagate = True
        return undo

    def second_handler(logger: logging.Logger) -> Callable[[], None]:
        extra = logging.StreamHandler(logging.getLogger().handlers[0].stream)  # type: ignore[attr-defined]
        extra.setFormatter(logging.Formatter("plain %(message)s"))
        logging.getLogger("bridge").addHandler(extra)
        return lambda: logging.getLogger("bridge").removeHandler(extra)

    def record_factory(logger: logging.Logger) -> Callable[[], None]:
        original = logging.getLogRecordFactory()
        def with_node(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = original(*args, **kwargs)
            record.node = "node-7"
            return record
        logging.setLogRecordFactory(with_node)
        return lambda: logging.setLogRecordFactory(original)

    def text_format(logger: logging.Logger) -> Callable[[], None]:
        handler = logging.getLogger().handlers[0]
        formatter = handler.formatter
        handler.setFormatter(logs.TextFormatter("%(levelname)s %(name)s: %(message)s"))
        return lambda: handler.setFormatter(formatter)

    def replaced(owner: Any, name: str, make: Callable[[Any], Any]) -> Callable[[], None]:
        """``owner.name`` replaced by ``make(original)``, as a library patches logging."""
        had = name in vars(owner)
        original = getattr(owner, name)
        setattr(owner, name, make(original))

        def undo() -> None:
            if had:
                setattr(owner, name, original)
            else:
                delattr(owner, name)
        return undo

    def traced_records(logger: logging.Logger) -> Callable[[], None]:
        # As ddtrace does: Logger.makeRecord wrapped to add the trace's ids.
        def make(original: Any) -> Any:
            def make_record(self: logging.Logger, *args: Any, **kwargs: Any) -> logging.LogRecord:
                record = original(self, *args, **kwargs)
                record.trace_id = "1234"
                return record
            return make_record
        return replaced(logging.Logger, "makeRecord", make)

    def breadcrumbs(logger: logging.Logger) -> Callable[[], None]:
        # As sentry-sdk does: Logger.callHandlers replaced, to see every record first.
        def make(original: Any) -> Any:
            def call_handlers(self: logging.Logger, record: logging.LogRecord) -> None:
                record.breadcrumb = "kept"
                original(self, record)
            return call_handlers
        return replaced(logging.Logger, "callHandlers", make)

    def record_init(logger: logging.Logger) -> Callable[[], None]:
        def make(original: Any) -> Any:
            def init(self: logging.LogRecord, *args: Any, **kwargs: Any) -> None:
                original(self, *args, **kwargs)
                self.node = "n7"
            return init
        return replaced(logging.LogRecord, "__init__", make)

    def stream_emit(logger: logging.Logger) -> Callable[[], None]:
        def make(original: Any) -> Any:
            def emit(self: logging.StreamHandler, record: logging.LogRecord) -> None:  # type: ignore[type-arg]
                record.msg = "[patched] " + str(record.msg)
                original(self, record)
            return emit
        return replaced(logging.StreamHandler, "emit", make)

    def formatter_class(logger: logging.Logger) -> Callable[[], None]:
        def make(original: Any) -> Any:
            def format(self: logs.JsonFormatter, record: logging.LogRecord) -> str:
                record.host = "web-1"
                return original(self, record)  # type: ignore[no-any-return]
            return format
        return replaced(logs.JsonFormatter, "format", make)

    def handler_instance_filter(logger: logging.Logger) -> Callable[[], None]:
        return replaced(logging.getLogger().handlers[0], "filter", lambda original: lambda r: False)

    def logger_instance_filter(logger: logging.Logger) -> Callable[[], None]:
        return replaced(logger, "filter", lambda original: lambda r: False)

    def formatter_instance(logger: logging.Logger) -> Callable[[], None]:
        formatter = logging.getLogger().handlers[0].formatter
        return replaced(formatter, "format", lambda original: lambda r: "FMT " + r.getMessage())

    def level_name(logger: logging.Logger) -> Callable[[], None]:
        logging.addLevelName(logging.INFO, "NOTICE")
        return lambda: logging.addLevelName(logging.INFO, "INFO")

    return [(f.__name__, f) for f in (logger_filter, handler_filter, handler_level, logger_level,
                                     disabled_globally, logger_disabled, not_propagating,
                                     second_handler, record_factory, text_format, traced_records,
                                     breadcrumbs, record_init, stream_emit, formatter_class,
                                     handler_instance_filter, logger_instance_filter,
                                     formatter_instance, level_name)]


@pytest.mark.parametrize(("name", "change"), _operator_changes())
def test_the_access_line_follows_whatever_logging_configuration_is_in_place(
        configured: io.StringIO, name: str,
        change: Callable[[logging.Logger], Callable[[], None]]) -> None:
    logger = logging.getLogger("bridge.access")
    with _alone():
        default = _without_time(_default_line(logger, configured))
        _assert_follows(logger, configured, change, default)


def _assert_follows(logger: logging.Logger, configured: io.StringIO,
                    change: Callable[[logging.Logger], Callable[[], None]], default: str) -> None:
    undo = change(logger)
    try:
        logs.log_access(logger, "POST", "/token", 200, 1.5)
        direct = [_without_time(line) if line.startswith("{") else line
                  for line in _lines(configured)]
        _through_logging(logger, "POST", "/token", 200, 1.5)
        through = [_without_time(line) if line.startswith("{") else line
                   for line in _lines(configured)]
    finally:
        undo()
    assert direct == through
    # Each change shows: something other than the one default line.
    assert direct != [default]


def _default_line(logger: logging.Logger, stream: io.StringIO) -> str:
    logs.log_access(logger, "POST", "/token", 200, 1.5)
    (line,) = _lines(stream)
    return line


def test_an_access_line_that_cannot_be_written_is_reported_without_its_values(
        configured: io.StringIO, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    handler = logging.getLogger().handlers[0]

    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            if "secret-path" in text:
                raise OSError("disk full")
            return super().write(text)

    broken = Broken()
    monkeypatch.setattr(handler, "stream", broken)
    with _alone():
        logs.log_access(logging.getLogger("bridge.access"), "GET", "/secret-path", 200, 1.0)
    report = json.loads(broken.getvalue())
    assert report["msg"] == "a log line could not be written" and report["error"] == "OSError"
    assert report["source_logger"] == "bridge.access"
    assert report["source"].rsplit(":", 1)[0] == __file__  # the caller, as logging names it
    assert "secret-path" not in broken.getvalue() + capsys.readouterr().err


def test_a_method_replaced_before_the_logs_module_was_imported_keeps_lines_in_logging() -> None:
    """Replaced before bridge.logs was imported (sentry-sdk initialised first, say), a method is
    what the module finds as it loads: it must not take that for logging's own."""
    assert logs._unpatched(logs._methods_in_use()) is not None

    def call_handlers(self: logging.Logger, record: logging.LogRecord) -> None:
        """A replacement defined outside logging."""

    assert logs._unpatched((*logs._methods_in_use(), call_handlers)) is None
    assert logs._unpatched((print,)) is None  # no Python code at all
