"""End-to-end fixtures: the real server with its supervised worker (tests/stack.py) on a
temporary database, and Debian's headless Chromium driven by Playwright.

    .venv/bin/python -m pytest tests/e2e -q -x

The server requires a token (ZOOLAB_TOKEN), so the dashboard's token prompt is exercised;
pages other than the launch test start with the token in localStorage. Screenshots go to
test-artifacts/screenshots/ (git-ignored)."""

from contextlib import contextmanager

import pytest

from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, QUICK, SERVER_ENV, TOKEN, TOKEN_KEY
from tests.stack import Stack


# Package scope: the browser (and Playwright's event loop) is gone before other tests run.
@pytest.fixture(scope="package")
def server(tmp_path_factory):
    """The real server and its supervised worker."""
    with Stack(tmp_path_factory.mktemp("zoolab-e2e"), token=TOKEN, env=SERVER_ENV) as s:
        yield s


@pytest.fixture(scope="package")
def idle_server(tmp_path_factory):
    """A server without any worker: runs stay queued."""
    with Stack(tmp_path_factory.mktemp("zoolab-e2e-idle"), token=TOKEN, env=SERVER_ENV, worker=False) as s:
        yield s


@pytest.fixture(scope="package")
def finished_runs(server):
    """Three small finished MNIST runs of different sizes, for compare, detail and URL tests."""
    runs = [server.post("/runs", {"model": model, "name": f"e2e {model}", **QUICK})
            for model in ("mnist-logreg", "mnist-2fc-relu-55k", "mnist-3fc-2bn-51k")]
    return server.wait_runs([r["id"] for r in runs])


@pytest.fixture(scope="package")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@contextmanager
def _page(browser, token: str | None, viewport: dict):
    """A page in a fresh browser context; fails the test on any JavaScript error."""
    context = browser.new_context(viewport=viewport, device_scale_factor=1)
    if token:
        context.add_init_script(f"localStorage.setItem({TOKEN_KEY!r}, {token!r})")
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


WIDE = {"width": 1360, "height": 900}


@pytest.fixture
def page(browser):
    """A page that already holds the server's token."""
    with _page(browser, TOKEN, WIDE) as p:
        yield p


@pytest.fixture
def fresh_page(browser):
    """A page of a first visit: no token stored yet."""
    with _page(browser, None, WIDE) as p:
        yield p


@pytest.fixture
def medium_page(browser):
    """A page 800 pixels wide, where the runs table must still fit."""
    with _page(browser, TOKEN, {"width": 800, "height": 900}) as p:
        yield p


@pytest.fixture
def narrow_page(browser):
    with _page(browser, TOKEN, {"width": 400, "height": 860}) as p:
        yield p
