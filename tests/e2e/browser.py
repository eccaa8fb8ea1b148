"""What the browser tests share: Debian's Chromium and its flags, the server's token and
where the page keeps it, the size of a quick run, screenshots."""

import os
from pathlib import Path

from tests.stack import REPO

SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
CHROMIUM = os.environ.get("ZOOLAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
TOKEN = "e2e-secret-token"
TOKEN_KEY = "zoolab.token"  # static/js/api.js
# Frequent within-epoch progress, so live curves move inside short epochs.
SERVER_ENV = {"ZOOLAB_PROGRESS_SECONDS": "0.25", "ZOOLAB_HEARTBEAT_SECONDS": "0.5"}

# Small runs: seconds each on a 2-core CPU, still evaluated on the full 10,000-image test set.
QUICK = {"epochs": 2, "train_subset": 6000}


def screenshot(page, name: str, path: Path | None = None) -> Path:
    target = path or SCREENSHOTS / f"{name}.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")  # a sticky header stays on top in a full-page shot
    page.screenshot(path=str(target), full_page=True)
    return target
