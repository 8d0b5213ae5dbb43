"""Secrets the tests handle (tokens, codes, cookies, SAML responses, keys) and every log line the
bridge wrote while they ran: at the end of the session no secret may appear in any line."""

from __future__ import annotations

import logging

from bridge.logs import JsonFormatter

SECRETS: set[str] = set()
LINES: list[str] = []
MIN_LENGTH = 16  # shorter values are not secrets of ours and would match by chance


def remember(*values: object) -> None:
    for value in values:
        if isinstance(value, str) and len(value) >= MIN_LENGTH:
            SECRETS.add(value)


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        LINES.append(self.format(record))


def leaked() -> list[str]:
    text = "\n".join(LINES)
    return sorted(secret[:12] + "…" for secret in SECRETS if secret in text)
