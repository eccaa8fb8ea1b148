"""Continuing the notes' study in the browser (issue 9), against the real server and worker on
real MNIST subsets: fork a finished run, edit its network in the layer table (shapes and
parameters from the server's checker as you type, a refusal at its row), launch, find the run
in the lineage under its parent with its change and its effect; retry a failed run with a
change; save a run as my preset, launch it, rename and delete it.

    .venv/bin/python -m pytest tests/e2e/test_study.py -q -x

Writes docs/layer-editor.png and docs/lineage.png for the README."""

import re

import pytest

from tests.e2e.browser import screenshot
from tests.stack import REPO

pytestmark = pytest.mark.e2e

# Its own recipe, so no other test's run shares its group (a group folds into one node).
STUDY = {"epochs": 2, "train_subset": 5000}
WITH_BN = ["flatten", "linear 784 60", "bn1d 60", "relu", "linear 60 60", "relu", "linear 60 10"]


def text(page, testid: str) -> str:
    return page.text_content(f"[data-testid={testid}]").strip()


def wait_total(page, prefix: str):
    page.wait_for_function("(p) => document.querySelector('[data-testid=net-total]').textContent.startsWith(p)", arg=prefix)


def refusal(server, layers: list[str]) -> tuple[int, str]:
    reply = server.api.post("/architectures/check", json={"layers": layers, "dataset": "mnist"})
    assert reply.status_code == 422, reply.text
    detail = reply.json()["detail"][0]
    return detail["loc"][2], detail["msg"]


def test_fork_a_run_insert_a_layer_and_find_it_in_the_lineage(page, server):
    base = server.post("/runs", {"model": "mnist-3fc-51k", "name": "e2e study base", **STUDY})
    base = server.wait_run(base["id"], "finished", timeout=300)
    layers = base["config"]["layers"]

    # "Edit & launch" on the run's row opens the form filled with its whole configuration.
    page.goto(f"{server.url}/#view=runs")
    page.click(f"[data-testid=fork-{base['id']}]")
    page.wait_for_function(f"location.hash.includes('from={base['id']}')")
    page.wait_for_selector(f"[data-testid=layer-{len(layers)}]")
    assert page.input_value("#f-epochs") == str(STUDY["epochs"])
    assert page.input_value("#f-train_subset") == str(STUDY["train_subset"])
    assert page.input_value("#f-lr") == str(base["config"]["lr"])
    assert [page.input_value(f"[data-testid=layer-{i + 1}]") for i in range(len(layers))] == layers
    assert f"#{base['id']}" in text(page, "launch-submit")

    # Each row's output shape and parameters are the server's checker's.
    wait_total(page, "51,370")
    table = server.post("/architectures/check", {"layers": layers, "dataset": "mnist"})
    for row in table["rows"]:
        assert text(page, f"shape-{row['index']}") == "×".join(map(str, row["shape"]))
        assert text(page, f"params-{row['index']}") == f"{row['params']:,}"

    # Insert bn1d 60 after layer 2: the parameter count changes as it is typed, before launch.
    page.click("[data-testid=layer-insert-2]")
    assert page.evaluate("document.activeElement.dataset.testid") == "layer-3"
    page.keyboard.type("bn1d 60")
    wait_total(page, "51,490")
    assert f"+120 against #{base['id']}" in text(page, "net-total")
    assert text(page, "params-3") == "120" and text(page, "shape-3") == "60"
    assert page.get_attribute("[data-testid=layer-row-3]", "data-mark") == "inserted"
    assert "1 layer inserted" in text(page, "launch-changes")
    screenshot(page, "layer_editor", REPO / "docs" / "layer-editor.png")

    # A refused layer: the checker's sentence at its row, and the button says why it is disabled.
    page.fill("[data-testid=layer-3]", "bn1d 61")
    index, message = refusal(server, WITH_BN[:2] + ["bn1d 61"] + WITH_BN[3:])
    assert index == 2
    page.wait_for_selector("[data-testid=layer-error-3]:not([hidden])")
    assert text(page, "layer-error-3") == message
    assert page.is_disabled("#launch-submit") and text(page, "launch-submit") == f"Can't launch: {message}"
    assert text(page, "net-total") == "—"
    screenshot(page, "layer_editor_refused")
    page.fill("[data-testid=layer-3]", "bn1d 60")
    page.wait_for_selector("#launch-submit:not([disabled])")
    wait_total(page, "51,490")

    page.click("#launch-submit")
    page.wait_for_function("location.hash.includes('view=runs') && !location.hash.includes('from=')")
    child = next(r for r in server.api.get("/runs", params={"limit": 20}).json()["items"] if r["parent_id"] == base["id"])
    assert child["config"]["layers"] == WITH_BN and child["params"] == 51_490
    assert child["name"] == "mnist-3fc-51k · bn1d 60 after layer 2"  # named by its change
    child = server.wait_run(child["id"], "finished", timeout=300)

    # The lineage: under its parent, with the diff and its effect.
    page.click("[data-testid=nav-lineage]")
    node = page.locator(f"[data-testid=lineage-run-{child['id']}]")
    node.wait_for()
    page.wait_for_function(f"""() => {{ const el = document.querySelector('[data-testid=lineage-acc-{child['id']}]');
      return el && el.textContent.endsWith('%'); }}""")
    assert node.get_attribute("data-parent") == f"run:{base['id']}"
    rows = page.eval_on_selector_all("#lineage-rows .lin-row", "rs => rs.map(r => [r.dataset.key, +r.dataset.depth])")
    keys = [k for k, _ in rows]
    at, parent_at = keys.index(f"run:{child['id']}"), keys.index(f"run:{base['id']}")
    assert parent_at < at and rows[at][1] == rows[parent_at][1] + 1
    assert all(depth > rows[parent_at][1] for _, depth in rows[parent_at + 1:at])  # inside the parent's subtree
    assert node.locator("[data-testid=lineage-change]").text_content().strip() == f"from #{base['id']}: bn1d 60 after layer 2"
    delta = child["best_test_acc"] - base["best_test_acc"]
    acc = node.locator("[data-delta=acc]")
    assert float(acc.get_attribute("data-value")) == pytest.approx(delta)
    sign = "+" if delta > 0 else "−" if delta < 0 else "±"
    assert re.sub(r"\s+", " ", acc.text_content()).strip() == f"Δ acc {sign}{abs(delta) * 100:.2f} pts"
    assert node.locator("[data-delta=params]").text_content() == "Δ params +120"
    page.evaluate("document.getElementById('toasts').replaceChildren()")
    screenshot(page, "lineage", REPO / "docs" / "lineage.png")

    # Clicking a node opens the run: "derived from #N" with the same diff and deltas, and the
    # network read-only.
    node.locator(f"a[href='#view=detail&run={child['id']}']").click()
    page.wait_for_selector("[data-testid=derived-parent]")
    assert text(page, "derived-parent").startswith(f"#{base['id']}")
    assert text(page, "derived-changes") == "bn1d 60 after layer 2"
    derived = page.locator("[data-testid=derived-delta] [data-delta=acc]")
    assert float(derived.get_attribute("data-value")) == pytest.approx(delta)
    page.wait_for_function("document.querySelector('#detail-network [data-testid=net-total]').textContent === '51,490'")
    assert page.locator("#detail-network tr[data-row]").count() == len(WITH_BN)
    assert page.locator("#detail-network input").count() == 0

    # Ticking two nodes opens Compare with both.
    page.go_back()
    page.wait_for_selector(f"[data-testid=lineage-select-{child['id']}]")
    page.check(f"[data-testid=lineage-select-{base['id']}]")
    page.check(f"[data-testid=lineage-select-{child['id']}]")
    page.click("[data-testid=lineage-compare]")
    page.wait_for_function(f"location.hash.includes('view=compare') && location.hash.includes('sel={base['id']},{child['id']}')")
    page.wait_for_selector(f"[data-testid=compare-run-{child['id']}]")


def test_retry_a_failed_run_with_a_change(page, server):
    # SGD at lr 100 diverges in its first epoch.
    failed = server.post("/runs", {"model": "mnist-3fc-51k", "optimizer": "sgd", "lr": 100, "epochs": 1,
                                   "train_subset": 2000, "test_subset": 2000})
    failed = server.wait_run(failed["id"], "failed", timeout=300)
    page.goto(f"{server.url}/#view=detail&run={failed['id']}")
    retry = page.locator(f"[data-testid=fork-{failed['id']}]")
    assert retry.text_content() == "Retry with changes"
    retry.click()
    page.wait_for_selector("#f-lr")
    assert text(page, "launch-preset-title").startswith("Retry with changes")
    assert page.input_value("#f-lr") == "100" and page.input_value("#f-optimizer") == '"sgd"'
    page.fill("#f-lr", "0.05")
    page.wait_for_selector(".field[data-field=lr].changed")
    assert text(page, "was-lr") == "was 100"
    assert page.locator("#launch-fields .field.changed").count() == 1
    assert "lr 100 → 0.05" in text(page, "launch-changes")
    page.click("#launch-submit")
    page.wait_for_function("location.hash.includes('view=runs')")
    retried = next(r for r in server.api.get("/runs", params={"limit": 20}).json()["items"] if r["parent_id"] == failed["id"])
    assert retried["name"] == "mnist-3fc-51k · lr 0.05" and retried["config"]["optimizer"] == "sgd"
    server.wait_run(retried["id"], "finished", timeout=300)


def test_save_launch_rename_and_delete_my_preset(page, server):
    source = server.post("/runs", {"model": "mnist-3fc-51k", "layers": WITH_BN, "lr": 0.002, "epochs": 1,
                                   "train_subset": 2000, "test_subset": 2000})
    page.goto(f"{server.url}/#view=detail&run={source['id']}")
    page.click(f"[data-testid=save-preset-{source['id']}]")
    page.wait_for_selector("[data-testid=preset-dialog][open]")
    page.fill("[data-testid=preset-name]", "My BN net")
    page.fill("[data-testid=preset-description]", "batch-norm after fc1, lr 0.002")
    page.click("[data-testid=preset-submit]")
    page.wait_for_selector("[data-testid=preset-dialog]", state="hidden")
    saved = {p["id"]: p for p in server.api.get("/presets").json()}
    assert saved["my-bn-net"]["from_run_id"] == source["id"] and saved["my-bn-net"]["layers"] == WITH_BN

    # Listed beside the notes' presets, marked as mine; launchable with its network and defaults.
    page.goto(f"{server.url}/#view=launch&ds=mnist")
    item = page.locator("[data-testid=preset-my-bn-net]")
    item.wait_for()
    assert page.locator("[data-testid=user-presets]").is_visible()
    assert "your preset" in item.text_content() and "My BN net" in item.text_content()
    assert "51,490 params" in item.text_content()
    item.click()
    page.wait_for_selector("[data-testid=layer-7]")
    assert [page.input_value(f"[data-testid=layer-{i + 1}]") for i in range(7)] == WITH_BN
    assert page.input_value("#f-lr") == "0.002"
    page.fill("#f-epochs", "1")
    page.fill("#f-train_subset", "2000")
    page.click("#launch-submit")
    page.wait_for_function("location.hash.includes('view=runs')")
    launched = server.api.get("/runs", params={"limit": 1}).json()["items"][0]
    assert launched["model"] == "my-bn-net" and launched["config"]["layers"] == WITH_BN

    # After a launch, the form offers to save the launched run as a preset too.
    page.click("[data-testid=nav-launch]")
    page.click("[data-testid=launch-save-preset]")
    page.fill("[data-testid=preset-name]", "My BN net")  # taken: the server says so, the dialog stays
    page.click("[data-testid=preset-submit]")
    page.wait_for_selector("[data-testid=preset-error]:not([hidden])")
    assert "exists already" in text(page, "preset-error")
    page.fill("[data-testid=preset-name]", "BN net, 1 epoch")
    page.click("[data-testid=preset-submit]")
    page.locator("[data-testid=preset-bn-net-1-epoch]").wait_for()

    # Renamed and deleted where it is listed; the runs that used it keep their network.
    page.click("[data-testid=rename-preset-my-bn-net]")
    page.fill("[data-testid=preset-name]", "Batch-norm after fc1")
    page.click("[data-testid=preset-submit]")
    page.wait_for_function("document.querySelector('[data-testid=preset-my-bn-net]').textContent.includes('Batch-norm after fc1')")
    assert {p["id"]: p for p in server.api.get("/presets").json()}["my-bn-net"]["name"] == "Batch-norm after fc1"
    page.on("dialog", lambda dialog: dialog.accept())
    for preset in ("my-bn-net", "bn-net-1-epoch"):
        page.click(f"[data-testid=delete-preset-{preset}]")
        page.locator(f"[data-testid=preset-{preset}]").wait_for(state="detached")
    assert server.api.get("/presets").json() == []
    assert server.run(launched["id"])["config"]["layers"] == WITH_BN
    assert page.locator("[data-testid=user-presets]").count() == 0


def test_preset_list_reads_whole_and_says_why_the_counts_differ(page, server):
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"{server.url}/#view=launch&ds=mnist&preset=mnist-logreg")
    page.wait_for_selector("[data-testid=layer-2]")
    # No description is cut, even where two presets differ only at the end.
    cut = page.eval_on_selector_all("#preset-list .preset-desc", "ds => ds.filter(d => d.scrollWidth > d.clientWidth"
                                    " || d.scrollHeight > d.clientHeight + 1).map(d => d.textContent)")
    assert cut == []
    assert "PolynomialLR(power=2)" in page.text_content("[data-testid=preset-mnist-3fc-2bn-polylr]")
    # The notes' parameter count beside the code's, with the reason they differ.
    summary = page.text_content("#launch-preset-summary")
    assert "7,850 parameters as the code builds the network (the notes' own count: 7840, 10 fewer)" in summary
    # The layer language, from the server, under the table.
    assert "conv IN OUT K [pad=P] [stride=S]" in page.text_content("[data-testid=layer-help]")
