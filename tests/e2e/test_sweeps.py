"""Sweeps in a real browser against the real server and worker: a TPE sweep launched from the
form (after the server refused a first try, its message shown), trained to the end on real
MNIST; its page draws the optimisation history, the importances and the parallel coordinates,
and links the best run. A grid sweep with a hopeless learning rate shows `pruned` runs in the
runs table and its status filter. Writes docs/sweep.png for the README.

    .venv/bin/python -m pytest tests/e2e/test_sweeps.py -q"""

import pytest

from tests.e2e.browser import screenshot
from tests.e2e.test_dashboard import wait_for_chart
from tests.stack import REPO, wait_for

pytestmark = pytest.mark.e2e

SWEEP_BUDGET = 10


def _fill_row(page, n: int, key: str, low: str, high: str, log: bool = True) -> None:
    page.select_option(f"[data-testid=param-key-{n}]", key)
    page.select_option(f"[data-testid=param-mode-{n}]", "range")
    page.fill(f"[data-testid=param-low-{n}]", low)
    page.fill(f"[data-testid=param-high-{n}]", high)
    page.set_checked(f"[data-testid=param-log-{n}]", log)


@pytest.mark.timeout(600)
def test_a_sweep_launched_from_the_form_and_its_page(page, server):
    page.goto(f"{server.url}/#view=sweeps")
    page.wait_for_selector("[data-testid=param-key-1]")  # the preset's space is loaded: lr and a width
    page.select_option("[data-testid=sweep-preset]", "mnist-2fc-relu-55k")
    page.wait_for_selector("[data-testid=param-key-1] option[value='layers.2']", state="attached")
    page.fill("[data-testid=sweep-epochs]", "3")
    page.fill("[data-testid=sweep-train_subset]", "4000")
    _fill_row(page, 0, "lr", "0.00003", "0.03")
    _fill_row(page, 1, "layers.2", "8", "256")
    page.select_option("[data-testid=sweep-sampler]", "tpe")
    page.select_option("[data-testid=sweep-pruner]", "median")
    page.fill("[data-testid=sweep-name]", "lr and width")

    # Refused first: the server's sentence, and nothing queued.
    before = server.api.get("/runs").json()["total"]
    page.fill("[data-testid=sweep-budget]", "500")
    page.click("[data-testid=sweep-submit]")
    page.wait_for_selector("[data-testid=sweep-error]:not([hidden])")
    assert "budget 500: one sweep queues at most 100 runs" in page.text_content("[data-testid=sweep-error]")
    assert server.api.get("/runs").json()["total"] == before and server.api.get("/sweeps").json() == []

    page.fill("[data-testid=sweep-budget]", str(SWEEP_BUDGET))
    page.click("[data-testid=sweep-submit]")
    page.wait_for_function("location.hash.includes('sweep=')")
    sweep_id = int(dict(p.split("=") for p in page.evaluate("location.hash").lstrip("#").split("&"))["sweep"])
    sweep = server.api.get(f"/sweeps/{sweep_id}").json()
    assert sweep["name"] == "lr and width" and sweep["sampler"] == "tpe" and sweep["pruner"] == "median"
    assert sweep["base"]["epochs"] == 3 and sweep["base"]["train_subset"] == 4000
    assert {d["name"]: (d["low"], d["high"], d["log"]) for d in sweep["space"]} == {
        "lr": (0.00003, 0.03, True), "layers.2": (8, 256, True)}

    page.wait_for_selector("[data-testid=sweep-status][data-status=finished]", timeout=420_000)
    sweep = server.api.get(f"/sweeps/{sweep_id}").json()
    progress = sweep["progress"]
    assert progress["trials"] == SWEEP_BUDGET and progress["finished"] + progress["pruned"] == SWEEP_BUDGET
    for key in ("finished", "pruned"):
        assert page.text_content(f"[data-testid=sweep-count-{key}]") == f"{progress[key]} {key}"

    # The charts, drawn from the sweep's trials.
    wait_for_chart(page, "sweep-history", 3)
    history = page.evaluate("document.getElementById('sweep-history').data.map((t) => t.y.length)")
    assert history == [progress["finished"], progress["pruned"], progress["finished"]]
    wait_for_chart(page, "sweep-parallel", 1)
    dims = page.evaluate("document.getElementById('sweep-parallel').data[0].dimensions.map((d) => [d.label, d.values.length])")
    assert dims == [["lr (log)", SWEEP_BUDGET], ["layers.2 (log)", SWEEP_BUDGET], ["best test accuracy", SWEEP_BUDGET]]
    importances = server.api.get(f"/sweeps/{sweep_id}/importances").json()["importances"]
    wait_for_chart(page, "sweep-importances", 1)
    bars = page.evaluate("document.getElementById('sweep-importances').data[0].y")
    assert sorted(bars) == sorted(importances) and bars

    # The best run, linked.
    best = sweep["best"]
    link = page.locator("[data-testid=sweep-best-link]")
    assert link.get_attribute("href") == f"#view=detail&run={best['id']}"
    assert f"{best['best_test_acc'] * 100:.2f}%" in link.text_content()
    page.set_viewport_size({"width": 1360, "height": 1200})
    page.wait_for_timeout(500)
    screenshot(page, "sweep", REPO / "docs" / "sweep.png")
    link.click()
    page.wait_for_function(f"location.hash.includes('view=detail') && location.hash.includes('run={best['id']}')")
    page.wait_for_selector(f"[data-testid=detail-title]:has-text('#{best['id']}')")

    # Back to the list: the sweep, finished, with its best run.
    page.goto(f"{server.url}/#view=sweeps")
    page.wait_for_selector(f"[data-testid=sweep-best-{sweep_id}]")
    assert "finished" in page.text_content(f"[data-testid=sweep-row-{sweep_id}]")


@pytest.mark.timeout(300)
def test_pruned_runs_in_the_runs_table_and_its_filter(page, server):
    sweep = server.post("/sweeps", {"base": {"model": "mnist-2fc-relu-55k", "epochs": 3, "train_subset": 3000,
                                             "test_subset": 2000},
                                    "sampler": "grid", "pruner": "median", "name": "hopeless lr",
                                    "space": {"lr": {"choices": [0.003, 0.005, 0.01, 1e-6]}}})
    done = wait_for(lambda: (s := server.api.get(f"/sweeps/{sweep['id']}").json())["status"] == "finished" and s,
                    240, "the grid sweep to finish")
    pruned = [r["id"] for r in server.api.get("/runs", params={"status": "pruned", "limit": 1000}).json()["items"]]
    hopeless = sweep["run_ids"][-1]
    assert hopeless in pruned and done["progress"]["pruned"] >= 1

    page.goto(f"{server.url}/#view=runs")
    page.select_option("[data-testid=filter-status]", "pruned")
    page.wait_for_function("location.hash.includes('status=pruned')")
    page.wait_for_selector(f"[data-testid=status-{hopeless}][data-status=pruned]")
    shown = page.eval_on_selector_all("#runs-tbody [data-status]", "els => els.map((e) => e.dataset.status)")
    assert shown and set(shown) == {"pruned"} and len(shown) == len(pruned)
    title = page.get_attribute(f"[data-testid=status-{hopeless}]", "title")
    assert title.startswith("pruned after epoch 1 of 3: test accuracy")
