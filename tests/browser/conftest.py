"""Browser tests: Debian's Chromium driven by Playwright's sync API against pytest-django's live server.

Playwright's sync API runs an event loop in the test thread, so Django refuses ORM calls there
unless DJANGO_ALLOW_ASYNC_UNSAFE is set (Django's documented escape hatch; the ORM calls made
here are plain synchronous test setup, never concurrent with the loop).

Set ZENITH_README_SCREENSHOTS=1 to (re)write the README screenshots in docs/screenshots/.
"""

import os
import re
from pathlib import Path

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402

from tests.factories import PASSWORD  # noqa: E402

CHROMIUM = Path(os.environ.get("ZENITH_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
VIEWPORT = {"width": 1280, "height": 800}
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
SCREENSHOTS = ROOT / "docs" / "screenshots"

expect.set_options(timeout=5_000)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item, so the page fixture knows whether the test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the whole session (Debian's, never a Playwright download)."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: the browser tests need Debian's chromium package "
            "(`make test` installs it; or `apt-get install chromium`).",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def _leave_roles_behind(django_db_blocker):
    """Set up before, torn down after, transactional_db's flush: re-seed the built-in roles then.

    The flush empties every table, including the roles the 0002 data migration seeded; putting them
    back leaves the test database as the migrations made it for whichever test runs next.
    """
    yield
    from identity.services import seed_roles

    with django_db_blocker.unblock():
        seed_roles()


@pytest.fixture(autouse=True)
def _browser_db(_leave_roles_behind, transactional_db, settings):
    """The live server runs in another thread, so data must be committed: a transactional database.

    Passwords use Django's fast test hasher (the live server thread reads the same settings): PBKDF2
    for every user of every test's cloud would be most of this suite's run time.
    """
    from identity.services import seed_roles

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    seed_roles()


@pytest.fixture
def page(browser, live_server, request):
    """A fresh browser context (cookies, storage) per test, aimed at the live server.

    On failure a full-page screenshot goes to test-artifacts/browser/<test>.png.
    """
    context = browser.new_context(base_url=live_server.url, viewport=VIEWPORT)
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
        try:
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        except Exception as exc:  # a crashed page must not hide the test's own failure
            print(f"could not save a failure screenshot: {exc}")
    context.close()


@pytest.fixture
def readme_screenshot():
    """Save a full-page README screenshot to docs/screenshots/<name>.png when ZENITH_README_SCREENSHOTS=1."""
    enabled = os.environ.get("ZENITH_README_SCREENSHOTS", "").lower() in {"1", "true", "yes"}

    def shoot(page: Page, name: str) -> None:
        if enabled:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    return shoot


def log_in(page: Page, username: str, password: str = PASSWORD) -> None:
    """Log in through the login form and wait for the overview."""
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/dashboard/overview/$"))


@pytest.fixture
def login(page):
    """``login("alice")`` logs the test's page in as that user (password tests.factories.PASSWORD)."""

    def do(username: str, password: str = PASSWORD) -> Page:
        log_in(page, username, password)
        return page

    return do
