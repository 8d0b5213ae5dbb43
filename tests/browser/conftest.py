"""Real headless Chromium for the browser tests: Debian's /usr/bin/chromium (``scripts/setup test``
installs it), driven through Playwright's sync API. Playwright's own browser builds are never used.

Without Chromium the browser tests skip, except in CI, where they fail. (Playwright itself is a
dependency of the ``test`` extra, so it is simply imported.)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

# The fixture that starts scripts/dev on free ports, shared with tests/test_dev_stack.py.
from tests.test_dev_stack import dev_stack_fixture  # noqa: F401

CHROMIUM = Path("/usr/bin/chromium")
IN_CI = bool(os.environ.get("CI"))
CHROMIUM_ARGS = [
    "--no-sandbox",  # we run as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium tries to reach Google's services, which are refused here.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Per action and per navigation; the dev stack answers in milliseconds once it is up.
TIMEOUT_MS = 15_000


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives a real headless Chromium through Playwright")


def _unavailable(reason: str) -> NoReturn:
    if IN_CI:
        pytest.fail(f"browser tests must run in CI: {reason} (scripts/setup test installs it)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing: apt-get install chromium")
    manager = sync_playwright().start()
    try:
        yield manager
    finally:
        manager.stop()


@pytest.fixture(scope="session")
def chromium(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                         args=CHROMIUM_ARGS)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    """A fresh browser context (no cookies, no storage) and one page in it, for each test."""
    context = chromium.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()
