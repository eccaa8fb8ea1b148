"""The reproduction page in the browser (issue 10), from real runs on MNIST subsets: the recipe
chosen on the page, the missing seeds of two presets queued with one click, watched until they
finish; each row's mean ± std and verdict read against figures computed here from the runs'
own rows; the CSV and Markdown exports follow the recipe.

    .venv/bin/python -m pytest tests/e2e/test_reproduction.py -q -x"""

import statistics

import pytest

from tests.e2e.browser import screenshot

pytestmark = pytest.mark.e2e

# Its own recipe: no other test's runs fall into these groups.
RECIPE = {"epochs": 1, "train_subset": 3000, "test_subset": 2000}
SEEDS = 2
CHOSEN = ("mnist-logreg", "mnist-2fc-relu-55k")


def test_reproduction_page_queues_missing_seeds_and_reads_the_verdicts(page, server):
    page.goto(f"{server.url}/#view=reproduction")
    page.wait_for_selector("[data-testid=repro-row-mnist-logreg]")
    for key, value in (*RECIPE.items(), ("seeds", SEEDS)):
        page.fill(f"[data-testid=repro-{key}]", str(value))
        page.press(f"[data-testid=repro-{key}]", "Tab")
    page.wait_for_function("location.hash.includes('rtest=2000') && location.hash.includes('rseeds=2')")
    page.wait_for_function("document.querySelector('[data-testid=repro-seeds-mnist-logreg]').textContent.startsWith('0 of 2')")
    assert "Recipe: each preset's defaults with 1 epoch" in page.text_content("#repro-recipe-text")

    # The exports follow the recipe.
    for testid, path in (("repro-csv", "/reproduction.csv"), ("repro-md", "/reproduction.md")):
        href = page.get_attribute(f"[data-testid={testid}]", "href")
        assert href.startswith(path) and all(f"{k}={v}" in href for k, v in {**RECIPE, "seeds": SEEDS}.items())
    markdown = page.request.get(server.url + page.get_attribute("[data-testid=repro-md]", "href")).text()
    assert markdown.startswith("| preset |") and "| mnist-logreg | 7850 | 92.15 | 0 |" in markdown

    # Two presets ticked, their missing seeds queued in one click.
    for preset in CHOSEN:
        page.check(f"[data-testid=repro-select-{preset}]")
    assert page.text_content("[data-testid=repro-queue]") == f"Queue {SEEDS * len(CHOSEN)} missing seeds (2 ticked presets)"
    page.click("[data-testid=repro-queue]")
    for preset in CHOSEN:  # queued at once, then finished: the page follows the runs
        page.wait_for_function(f"!document.querySelector('[data-testid=repro-queue-{preset}]')")
    for preset in CHOSEN:
        page.wait_for_function(
            f"document.querySelector('[data-testid=repro-seeds-{preset}]').textContent === '{SEEDS} of {SEEDS} finished'",
            timeout=300_000)
    assert page.locator("[data-testid=repro-queue-mnist-3fc-51k]").is_visible()  # not chosen: still missing

    runs = server.api.get("/runs", params={"limit": 200}).json()["items"]
    for preset in CHOSEN:
        mine = [r for r in runs if r["model"] == preset and r["config"]["epochs"] == RECIPE["epochs"]
                and r["config"]["train_subset"] == RECIPE["train_subset"] and r["config"]["test_subset"] == RECIPE["test_subset"]]
        assert sorted(r["config"]["seed"] for r in mine) == list(range(SEEDS))
        best = [r["best_test_acc"] for r in mine]
        mean, std = statistics.fmean(best), statistics.stdev(best)
        assert page.text_content(f"[data-testid=repro-mean-{preset}]") == f"{mean * 100:.2f}% ± {std * 100:.2f}"
        notes = next(p for p in server.api.get("/zoo").json() if p["id"] == preset)["notes_acc"]
        verdict = "reproduced" if mean >= notes else "not reproduced"
        assert page.text_content(f"[data-testid=repro-verdict-{preset}]") == verdict
        margin = page.text_content(f"[data-testid=repro-margin-{preset}]")
        assert margin == f"{'+' if mean > notes else '−'}{abs(mean - notes) * 100:.2f} pts"
    screenshot(page, "reproduction")
