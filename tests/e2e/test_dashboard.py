"""The dashboard in a real browser against the real server and worker: launch and watch a run
live, compare runs, a run's detail, the server's validation messages in the form, the state in
the URL, a thousand runs, no worker, a narrow window.

    .venv/bin/python -m pytest tests/e2e -q -x"""

import json
import re

import pytest

from tests.e2e.browser import QUICK, TOKEN, TOKEN_KEY, screenshot

pytestmark = pytest.mark.e2e

# Records every status badge put into the runs table (a badge is replaced, never edited, when
# the status changes) and every progress bar, however briefly each was shown.
RECORD_TABLE = """() => {
  window.__seen = [];
  window.__notReloaded = true;
  const record = (node) => {
    if (node.nodeType !== 1) return;
    for (const el of [node, ...node.querySelectorAll('[data-status], .progress, .queue-place')]) {
      if (el.dataset && el.dataset.status) window.__seen.push(['status', +el.dataset.run, el.dataset.status]);
      else if (el.classList && (el.classList.contains('progress') || el.classList.contains('queue-place'))) {
        window.__seen.push(['progress', el.dataset.testid, el.textContent]);
      }
    }
  };
  new MutationObserver((records) => records.forEach((r) => r.addedNodes.forEach(record)))
    .observe(document.getElementById('runs-tbody'), { childList: true, subtree: true });
}"""

TRACE_LENGTHS = """(id) => {
  const el = document.getElementById(id);
  return el && el.data ? el.data.map((t) => t.x.length) : null;
}"""


def trace_names(page, element_id: str) -> list[str]:
    return page.evaluate(f"document.getElementById({element_id!r}).data.map((t) => t.name)")


def wait_for_chart(page, element_id: str, traces: int = 1, timeout: float = 20_000):
    page.wait_for_function(
        "([id, n]) => { const el = document.getElementById(id);"
        " return el && el.data && el.data.length >= n && el.offsetWidth > 0; }", arg=[element_id, traces],
        timeout=timeout)


def hash_state(page) -> dict:
    return dict(p.split("=", 1) for p in page.evaluate("location.hash").lstrip("#").split("&") if "=" in p)


def test_launch_and_watch_a_run_live(fresh_page, server):
    page = fresh_page
    page.goto(f"{server.url}/#view=launch")
    page.click("[data-testid=dataset-mnist]")
    page.click("[data-testid=preset-mnist-3fc-2bn-51k]")
    # Prefilled with the preset's defaults from /zoo; choices from /zoo/options.
    preset = next(p for p in server.api.get("/zoo").json() if p["id"] == "mnist-3fc-2bn-51k")
    assert page.input_value("#f-epochs") == str(preset["defaults"]["epochs"])
    assert page.input_value("#f-batch_size") == str(preset["defaults"]["batch_size"])
    assert set(page.eval_on_selector_all("#f-optimizer option", "os => os.map(o => o.textContent)")) == set(
        server.api.get("/zoo/options").json()["optimizers"])
    assert "51,610 params" in page.text_content("[data-testid=preset-mnist-3fc-2bn-51k]")
    assert "97.79%" in page.text_content("[data-testid=preset-mnist-3fc-2bn-51k]")

    page.fill("#f-name", "e2e live run")
    page.fill("#f-epochs", "3")
    page.fill("#f-train_subset", "24000")  # a few seconds: a dozen progress points at 0.25 s
    page.evaluate(RECORD_TABLE)
    page.click("#launch-submit")

    # The server wants a token: the page asks once, keeps it, and the launch goes through.
    page.wait_for_selector("[data-testid=token-dialog][open]")
    page.fill("#token-input", TOKEN)
    page.click("#token-submit")
    page.wait_for_function("location.hash.includes('view=runs')")
    assert page.evaluate(f"localStorage.getItem({TOKEN_KEY!r})") == TOKEN

    row = page.locator("#runs-tbody tr", has_text="e2e live run")
    row.wait_for()
    run_id = int(row.get_attribute("data-run-id"))
    chart = f"live-chart-{run_id}"
    wait_for_chart(page, chart, 4, timeout=120_000)  # drawn once a worker takes the run
    # Every time the page draws or extends the chart, the train curve's length: a record of
    # each update, however busy the machine (a timer sampling it can miss updates under load).
    page.evaluate("""(id) => { window.__lengths = [];
      const record = () => { const el = document.getElementById(id);
        if (el && el.data) window.__lengths.push(el.data[0].x.length); };
      for (const name of ['react', 'extendTraces']) {
        const original = Plotly[name];
        Plotly[name] = function (...args) { const out = original.apply(this, args); record();
          Promise.resolve(out).then(record); return out; };
      }
      record(); }""", chart)

    page.wait_for_selector(f"#runs-tbody [data-testid=status-{run_id}][data-status=running]", timeout=120_000)
    page.wait_for_selector(f"#runs-tbody [data-testid=status-{run_id}][data-status=finished]", timeout=240_000)
    page.wait_for_function("([id, n]) => document.getElementById(id).data[3].x.length >= n", arg=[chart, 3])

    # The table showed every status, in order, and a progress bar while it ran.
    seen = page.evaluate("window.__seen")
    statuses = [s for kind, rid, s in seen if kind == "status" and rid == run_id]
    order = [s for i, s in enumerate(statuses) if i == 0 or statuses[i - 1] != s]
    assert [s for s in order if s in ("queued", "running", "finished")] == ["queued", "running", "finished"], statuses
    progress = [text for kind, tid, text in seen if kind == "progress" and tid == f"progress-{run_id}"]
    assert any(re.search(r"Epoch \d of 3", t) for t in progress), progress
    places = [text for kind, tid, text in seen if kind == "progress" and tid == f"queue-{run_id}"]
    assert places and places[0] == "1st in queue", places

    # The live chart grew while the page stayed (no reload): more points over time.
    lengths = page.evaluate("window.__lengths")
    assert page.evaluate("window.__notReloaded") is True
    assert lengths and lengths[-1] > lengths[0], lengths
    assert len(set(lengths)) >= 3, f"the curve grew in fewer than two steps: {lengths}"
    assert page.evaluate(TRACE_LENGTHS, chart)[3] == 3  # test accuracy: one point per epoch

    run = server.run(run_id)
    assert run["status"] == "finished" and run["epochs_done"] == 3
    best = page.text_content(f"[data-testid=best-{run_id}]")
    assert best == f"{run['best_test_acc'] * 100:.2f}%"
    screenshot(page, "launch_live")


def test_bad_value_shows_the_servers_message(page, server):
    before = server.api.get("/runs").json()["total"]
    page.goto(f"{server.url}/#view=launch&preset=mnist-logreg")
    page.wait_for_selector("#f-epochs")

    for field, bad in (("epochs", "0"), ("lr", "-1")):
        reply = server.api.post("/runs", json={"model": "mnist-logreg", field: float(bad) if field == "lr" else int(bad)})
        assert reply.status_code == 422
        message = next(d["msg"] for d in reply.json()["detail"] if d["loc"][-1] == field)
        page.click("[data-testid=launch-reset]")
        page.fill(f"#f-{field}", bad)
        page.click("#launch-submit")
        error = page.locator(f"[data-testid=error-{field}]")
        error.wait_for()
        assert error.text_content() == message
        assert page.get_attribute(f"#f-{field}", "aria-invalid") == "true"
        summary = page.text_content("[data-testid=launch-error]")
        assert field in summary and message in summary
        other = "lr" if field == "epochs" else "epochs"
        assert page.locator(f"[data-testid=error-{other}]").is_hidden()
        assert "view=launch" in page.evaluate("location.hash")
        screenshot(page, f"launch_error_{field}")
    assert server.api.get("/runs").json()["total"] == before


def test_compare_runs(page, server, finished_runs):
    a, b, c = finished_runs
    page.goto(f"{server.url}/#view=runs")
    for run in (a, c):
        page.check(f"[data-testid=select-{run['id']}]")
    assert page.text_content("#compare-button") == "Compare 2 selected"
    page.click("#compare-button")
    page.wait_for_function("location.hash.includes('view=compare')")

    wait_for_chart(page, "compare-acc", 2)
    names = trace_names(page, "compare-acc")
    assert names == [f"#{a['id']} {a['name']}", f"#{c['id']} {c['name']}"]
    assert page.evaluate(TRACE_LENGTHS, "compare-acc") == [QUICK["epochs"]] * 2
    assert len(trace_names(page, "compare-loss")) == 2

    # Accuracy against parameters: both runs, on a log axis, with the Pareto front.
    wait_for_chart(page, "compare-params", 3)
    params = page.evaluate("""() => { const el = document.getElementById('compare-params');
      return { names: el.data.map((t) => t.name), xs: el.data.map((t) => t.x), axis: el.layout.xaxis.type }; }""")
    assert params["axis"] == "log"
    assert f"#{a['id']} {a['name']}" in params["names"] and f"#{c['id']} {c['name']}" in params["names"]
    front = params["xs"][params["names"].index("Pareto front")]
    assert front and front == sorted(front)
    assert a["params"] in front  # the smallest run is always on the front
    wait_for_chart(page, "compare-time", 2)
    assert page.evaluate("document.getElementById('compare-best').data[0].y.length") == 2

    # Only the hyper-parameters that differ: the model does, the epochs do not.
    diff_keys = page.eval_on_selector_all("#compare-diff tbody tr[data-key]", "rs => rs.map(r => r.dataset.key)")
    assert "model" in diff_keys and "epochs" not in diff_keys

    # Against wall time: the x values become seconds.
    page.click("label:has(#compare-x-wall)")
    page.wait_for_function("document.getElementById('compare-acc').layout.xaxis.title.text.includes('seconds')")
    assert hash_state(page)["x"] == "wall"
    screenshot(page, "compare")

    # Three runs of different sizes, per epoch (the README's picture adds groups: test_charts.py).
    page.goto(f"{server.url}/#view=compare&sel={a['id']},{b['id']},{c['id']}")
    page.reload()
    wait_for_chart(page, "compare-acc", 3)
    wait_for_chart(page, "compare-params", 4)
    page.wait_for_timeout(500)
    screenshot(page, "compare_three")


def test_run_detail(page, server, finished_runs):
    run = finished_runs[2]
    page.goto(f"{server.url}/#view=runs")
    page.click(f"[data-testid=run-link-{run['id']}]")
    page.wait_for_function(f"location.hash.includes('run={run['id']}')")
    assert f"#{run['id']}" in page.text_content("[data-testid=detail-title]")

    wait_for_chart(page, "detail-confusion")
    heatmap = page.evaluate("""() => { const t = document.getElementById('detail-confusion').data[0];
      return { type: t.type, rows: t.z.length, cols: t.z[0].length, total: t.z.flat().reduce((a, b) => a + b, 0) }; }""")
    assert heatmap == {"type": "heatmap", "rows": 10, "cols": 10, "total": 10_000}  # the full MNIST test set
    wait_for_chart(page, "detail-perclass")
    assert page.evaluate("document.getElementById('detail-perclass').data[0].y.length") == 10
    wait_for_chart(page, "detail-curves", 4)
    assert page.evaluate(TRACE_LENGTHS, "detail-curves")[3] == QUICK["epochs"]

    figures = page.locator("[data-testid=detail-gallery] figure")
    assert figures.count() > 0
    page.wait_for_function("""() => [...document.querySelectorAll('#detail-gallery img')]
      .every((img) => img.complete && img.naturalWidth > 0)""")
    caption = figures.first.text_content()
    assert "→" in caption

    href = page.get_attribute("[data-testid=detail-checkpoint]", "href")
    assert href == f"/runs/{run['id']}/checkpoint"
    checkpoint = page.request.get(server.url + href)
    assert checkpoint.ok and len(checkpoint.body()) > 1000
    metrics_csv = page.request.get(server.url + page.get_attribute("[data-testid=detail-metrics-csv]", "href"))
    assert metrics_csv.ok and "test_acc" in metrics_csv.text().splitlines()[0]
    config = page.text_content("[data-testid=detail-config]")
    assert "train_subset" in config and str(QUICK["train_subset"]) in config
    assert page.locator("[data-testid=detail-error]").is_hidden()
    screenshot(page, "detail")


def test_url_state_survives_a_reload(page, server, finished_runs):
    a, b, _ = finished_runs
    page.goto(f"{server.url}/#view=runs")
    page.select_option("#filter-dataset", "mnist")
    page.select_option("#filter-status", "finished")
    page.fill("#filter-q", "e2e mnist")
    page.wait_for_function("location.hash.includes('q=')")
    page.click("#runs-table th[data-sort=best_test_acc]")
    page.wait_for_function("location.hash.includes('sort=best_test_acc')")
    page.check(f"[data-testid=select-{a['id']}]")
    page.check(f"[data-testid=select-{b['id']}]")
    state = hash_state(page)
    assert state["sel"] == f"{a['id']},{b['id']}"
    assert (state["dataset"], state["status"], state["sort"], state.get("order", "desc")) == ("mnist", "finished", "best_test_acc", "desc")

    page.reload()
    page.wait_for_selector(f"[data-testid=select-{a['id']}]")
    assert page.input_value("#filter-dataset") == "mnist"
    assert page.input_value("#filter-status") == "finished"
    assert page.input_value("#filter-q") == "e2e mnist"
    assert page.get_attribute("#runs-table th[data-sort=best_test_acc]", "aria-sort") == "descending"
    assert page.is_checked(f"[data-testid=select-{a['id']}]") and page.is_checked(f"[data-testid=select-{b['id']}]")
    statuses = page.eval_on_selector_all("#runs-tbody [data-status]", "bs => bs.map(b => b.dataset.status)")
    assert statuses and set(statuses) == {"finished"}
    accs = page.eval_on_selector_all("#runs-tbody [data-testid^=best-]", "cs => cs.map(c => parseFloat(c.textContent))")
    assert accs == sorted(accs, reverse=True)
    export = page.get_attribute("#runs-export", "href")
    assert "dataset=mnist" in export and "status=finished" in export

    page.click("#compare-button")
    wait_for_chart(page, "compare-acc", 2)
    page.reload()
    wait_for_chart(page, "compare-acc", 2)
    assert page.is_visible("#view-compare") and not page.is_visible("#view-runs")
    assert len(trace_names(page, "compare-acc")) == 2

    page.click(f"[data-testid=compare-run-{b['id']}] a[data-go-view=detail]")
    page.wait_for_selector("[data-testid=detail-title]")
    page.reload()
    page.wait_for_function(f"document.getElementById('detail-title').textContent.includes('#{b['id']}')")
    assert page.is_visible("#view-detail")
    assert hash_state(page)["sel"] == f"{a['id']},{b['id']}"  # the selection outlives the detour
    page.go_back()
    wait_for_chart(page, "compare-acc", 2)
    assert page.is_visible("#view-compare")
    screenshot(page, "url_state")


def test_thousand_runs_and_no_worker(page, idle_server):
    """With no worker alive the page says so; a thousand runs page and sort on the server."""
    server = idle_server
    payloads = [{"model": m, "name": f"bulk {i:04d}", "epochs": 1}
                for i, m in enumerate(["mnist-logreg", "cifar-conv5-pool-fc-2k"] * 500)]
    for body in payloads:
        server.post("/runs", body)
    page.goto(f"{server.url}/#view=runs")
    banner = page.locator("[data-testid=no-worker-banner]")
    banner.wait_for()
    assert "No worker is alive" in banner.text_content()
    assert page.get_attribute("[data-testid=worker-status]", "data-alive") == "0"

    page.wait_for_function("document.querySelectorAll('#runs-tbody tr').length === 50")
    assert page.text_content("#runs-pageinfo") == "1–50 of 1,000 runs"
    first = page.get_attribute("#runs-tbody tr:first-child", "data-run-id")
    assert page.text_content(f"[data-testid=queue-{first}]") == "1000th in queue"
    page.click("#runs-next")
    page.wait_for_function("document.getElementById('runs-pageinfo').textContent.startsWith('51–100')")
    page.click("#runs-table th[data-sort=name]")
    page.wait_for_function("document.getElementById('runs-pageinfo').textContent.startsWith('1–50')")
    names = page.eval_on_selector_all("#runs-tbody .col-name a", "as => as.map(a => a.textContent)")
    assert names[0].endswith("bulk 0000") and names[1].endswith("bulk 0001")
    page.select_option("#filter-dataset", "cifar10")
    page.wait_for_function("document.getElementById('runs-pageinfo').textContent.endsWith('of 500 runs')")
    # The live panel shows the head of the queue, not a thousand cards.
    assert page.locator(".live-card").count() <= 5
    assert "more queued" in page.text_content("#live-more")
    screenshot(page, "thousand_runs_no_worker")

    # Cancel from the row: queued → cancelled at once, then retry puts it back in the queue.
    row_id = page.get_attribute("#runs-tbody tr:first-child", "data-run-id")
    page.click(f"[data-testid=cancel-{row_id}]")
    page.wait_for_selector(f"#runs-tbody [data-testid=status-{row_id}][data-status=cancelled]")
    page.click(f"[data-testid=retry-{row_id}]")
    page.wait_for_selector(f"#runs-tbody [data-testid=status-{row_id}][data-status=queued]")
    assert server.run(int(row_id))["status"] == "queued"

    # The whole CIFAR-10 chronology, queued in the notes' order.
    zoo = [p["id"] for p in sorted(server.api.get("/zoo").json(), key=lambda p: p["order"]) if p["dataset"] == "cifar10"]
    page.goto(f"{server.url}/#view=launch&ds=cifar10")
    page.on("dialog", lambda dialog: dialog.accept())
    page.click("[data-testid=launch-chronology]")
    page.wait_for_function("location.hash.includes('view=runs')")
    newest = server.api.get("/runs", params={"limit": len(zoo)}).json()["items"]
    assert [r["model"] for r in reversed(newest)] == zoo
    page.wait_for_function("document.getElementById('runs-pageinfo').textContent.endsWith(`of ${%d} runs`)" % (500 + len(zoo)))


def test_narrow_window(narrow_page, server, finished_runs):
    page = narrow_page
    run = finished_runs[0]
    ready = {"runs": "#runs-tbody tr", "launch": "#preset-list .preset",
             "detail": "#detail-confusion .main-svg", "compare": "#compare-params .main-svg"}
    for view in ("runs", "launch", f"detail&run={run['id']}", f"compare&sel={run['id']}"):
        page.goto(f"{server.url}/#view={view}")
        page.wait_for_selector(ready[view.split("&")[0]])
        page.wait_for_timeout(300)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{view}: the page is {overflow}px wider than the window"
        screenshot(page, f"narrow_{view.split('&')[0]}")
    assert json.loads(page.evaluate("JSON.stringify(document.body.dataset)"))["view"] == "compare"
