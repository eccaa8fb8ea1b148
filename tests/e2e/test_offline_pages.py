"""Every page zoolab serves works on a machine without internet (issue 18): in a real browser,
with every request to another host blocked and recorded, each page renders and asks nothing
of another host — the dashboard (`/`), the API docs (`/docs` Swagger UI, `/redoc` ReDoc) and
any page added later (they are found in the application's routes).

    .venv/bin/python -m pytest tests/e2e/test_offline_pages.py -q"""

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from app.main import create_app

pytestmark = pytest.mark.e2e


def served_pages() -> list[str]:
    """Paths of the pages the application serves: GET routes outside the API schema, without
    path parameters, that are neither static files nor the schema itself."""
    app = create_app()
    return sorted(r.path for r in app.routes
                  if "GET" in getattr(r, "methods", ()) and not getattr(r, "include_in_schema", True)
                  and "{" not in r.path and not r.path.startswith("/static/") and r.path != app.openapi_url)


PAGES = served_pages()

# What each page shows once it has loaded its scripts and data.
RENDERED = {
    "/": lambda page: expect(page.locator("#runs-tbody")).to_be_attached(),
    "/docs": lambda page: expect(page.locator(".opblock-post .opblock-summary-path")
                                 .filter(has_text="/runs").first).to_be_visible(),
    "/redoc": lambda page: expect(page.get_by_role("heading", name="Create Run")).to_be_visible(),
}


def test_the_pages_are_found():
    assert {"/", "/docs", "/redoc"} <= set(PAGES), PAGES


@pytest.mark.parametrize("path", PAGES)
def test_page_loads_nothing_from_another_host(page, idle_server, path):
    origin = urlsplit(idle_server.url).netloc
    remote: list[str] = []

    def only_local(route):
        url = urlsplit(route.request.url)
        if url.scheme in ("data", "blob") or url.netloc == origin:
            route.continue_()
        else:
            remote.append(route.request.url)
            route.abort("internetdisconnected")

    page.route("**/*", only_local)
    response = page.goto(idle_server.url + path)
    assert response.ok and response.headers["content-type"].startswith("text/html"), response.status
    try:
        RENDERED.get(path, lambda page: None)(page)
        page.wait_for_load_state("networkidle")
    finally:  # a page that cannot render without another host fails naming what it asked for
        assert remote == [], f"{path} requested other hosts: {remote}"
