"""The repository documents itself: docs/zoo.md is what `python -m trainer.zoo --markdown`
prints from the registry, and README.md links only to files inside the repository.

    .venv/bin/python -m pytest tests/test_docs.py -q
"""

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ZOO_COMMAND = "python -m trainer.zoo --markdown > docs/zoo.md"


def test_zoo_page_matches_the_registry():
    generated = subprocess.run([sys.executable, "-m", "trainer.zoo", "--markdown"], cwd=REPO, check=True,
                               capture_output=True, text=True, timeout=60).stdout
    written = (REPO / "docs" / "zoo.md").read_text()
    assert written == generated, f"docs/zoo.md differs from trainer/zoo.py: run `{ZOO_COMMAND}`"


def test_zoo_page_shows_each_preset_as_written_and_as_noted():
    from trainer.zoo import PRESETS

    rows = {line.split(" | ")[0].lstrip("| "): line for line in (REPO / "docs" / "zoo.md").read_text().splitlines()
            if line.startswith("| ") and not line.startswith("| id ")}
    assert set(rows) == set(PRESETS)
    assert "| 7,850 | 7840 | 92.15% | 68 s |" in rows["mnist-logreg"]
    assert "| 6,575,370 | 6.6M | 89.87% | — |" in rows["cifar-resnet-6.6m"]
    assert "`linear 784 10`" in rows["mnist-logreg"]


def test_readme_links_stay_inside_the_repository():
    readme = (REPO / "README.md").read_text()
    targets = [t.split("#")[0] for t in re.findall(r"\]\(([^)\s]+)\)", readme)]
    local = [t for t in targets if t and not re.match(r"[a-z]+:", t)]
    assert local, "README links no file at all: the pattern is wrong"
    for target in local:
        path = (REPO / target).resolve()
        assert path.is_relative_to(REPO) and path.exists(), f"README links {target}, not a file of the repository"
