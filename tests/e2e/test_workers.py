"""The workers' devices in the dashboard: `zoolab serve --workers 2`, and the header's worker
pill opens a panel naming each worker, its device and its memory."""

import pytest

from tests.stack import Stack

pytestmark = pytest.mark.e2e


def test_the_worker_panel_shows_each_workers_device_and_memory(page, tmp_path):
    with Stack(tmp_path, args=["--workers", "2"]).start(workers=2) as stack:
        names = sorted(w["name"] for w in stack.workers() if w["alive"])
        assert len(names) == 2
        page.goto(stack.url)
        page.wait_for_function("document.querySelector('[data-testid=worker-status]').dataset.alive === '2'")
        page.click("[data-testid=worker-status]")
        panel = page.locator("[data-testid=workers-panel]")
        panel.wait_for()
        for name in names:
            row = panel.locator(f"[data-testid='worker-{name}']").inner_text()
            assert "cpu (" in row and "GiB of" in row and "idle" in row, row
        page.click("[data-testid=worker-status]")
        assert panel.is_hidden()
