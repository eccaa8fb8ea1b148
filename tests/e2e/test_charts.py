"""The charts read at a glance (issues 13 and 10), in a real browser against the real server and
worker on real MNIST: a run keeps its colour; bars zoom to the data and say so; scatter labels
keep clear of each other, the context runs can be limited and log ticks read as values; the time
chart compares like with like; a diverged run draws its loss up to the NaN; smoothing and a log
loss; live cards without empty charts or text over ticks; few toasts, clear of the table; two
groups of seeds compared, with the verdict in words and numbers (the README's picture).

    .venv/bin/python -m pytest tests/e2e/test_charts.py -q"""

import math
from datetime import UTC, datetime

import pytest

from tests.e2e.browser import QUICK, SERVER_ENV, TOKEN, screenshot
from tests.e2e.conftest import _page
from tests.e2e.test_dashboard import hash_state, wait_for_chart
from tests.stack import REPO, Stack

pytestmark = pytest.mark.e2e

# What each compare chart holds, per item key ("run-7" or a group key; a trace named "#7 ..." is
# run 7's): colour and points.
TRACES = """(id) => document.getElementById(id).data
  .map((t) => ({ t, key: t.meta && t.meta.key || (/^#(\\d+)/.test(t.name) ? `run-${t.name.match(/^#(\\d+)/)[1]}` : null) }))
  .filter(({ t, key }) => key && !(t.meta && t.meta.band))
  .map(({ t, key }) => ({ key, color: (t.line && t.line.color) || t.marker.color, x: t.x, y: t.y, name: t.name,
                         ex: t.error_x, ey: t.error_y, mode: t.mode }))"""

# Bounding boxes of the elements matching a selector, in page pixels.
BOXES = """(sel) => [...document.querySelectorAll(sel)].filter((e) => e.getClientRects().length)
  .map((e) => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom, e.textContent]; })"""

DIVERGING = {"model": "mnist-3fc-51k", "optimizer": "sgd", "lr": 100.0, "epochs": 2, "train_subset": 5000}


def overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@pytest.fixture
def wide_page(browser):
    with _page(browser, TOKEN, {"width": 1440, "height": 900}) as p:
        yield p


@pytest.fixture(scope="module")
def idle(tmp_path_factory):
    """A server of this module's own without a worker (the package's idle server counts its runs)."""
    with Stack(tmp_path_factory.mktemp("zoolab-e2e-charts-idle"), token=TOKEN, env=SERVER_ENV, worker=False) as s:
        yield s


@pytest.fixture(scope="module")
def tiny_runs(server):
    """Twelve runs on a few hundred images: the kind that stretched every scatter plot."""
    runs = [server.post("/runs", {"model": "mnist-logreg", "name": f"tiny {i}", "epochs": 1, "train_subset": 300 + i,
                                  "test_subset": 500}) for i in range(12)]
    return server.wait_runs([r["id"] for r in runs])


@pytest.fixture(scope="module")
def bn_groups(server):
    """The notes' bn1-vs-bn2 step as two groups of three seeds each."""
    created = [server.post("/runs", {"model": model, "seeds": 3, **QUICK})
               for model in ("mnist-3fc-bn1-51k", "mnist-3fc-bn2-51k")]
    runs = [server.wait_runs(c["run_ids"]) for c in created]
    return [{"key": rs[0]["group_key"], "runs": rs} for rs in runs]


def compare(page, server, sel=(), groups=(), extra=""):
    parts = [f"sel={','.join(str(i) for i in sel)}"] if sel else []
    parts += [f"groups={','.join(groups)}"] if groups else []
    page.goto(f"{server.url}/#view=compare&{'&'.join(parts)}{extra}")
    chips = [f"compare-run-{i}" for i in sel] + [f"compare-group-{k}" for k in groups]
    page.wait_for_function("(ids) => JSON.stringify([...document.querySelectorAll('#compare-legend li')]"
                           ".map((li) => li.dataset.testid)) === JSON.stringify(ids)", arg=chips)
    wait_for_chart(page, "compare-acc", len(sel) + len(groups))
    wait_for_chart(page, "compare-params", 3)


def test_a_run_keeps_its_colour_across_selections(page, server, finished_runs):
    a, b, c = finished_runs
    compare(page, server, (a["id"], b["id"], c["id"]))
    before = {t["key"]: t["color"] for t in page.evaluate(TRACES, "compare-acc")}
    assert len(set(before.values())) == 3

    page.click(f"[data-testid=compare-run-{b['id']}] button[aria-label='Remove #{b['id']}']")
    page.wait_for_function("document.getElementById('compare-acc').data.length === 2")
    after = {t["key"]: t["color"] for t in page.evaluate(TRACES, "compare-acc")}
    assert after == {k: v for k, v in before.items() if k != f"run-{b['id']}"}
    for chart in ("compare-params", "compare-time"):
        assert {t["key"]: t["color"] for t in page.evaluate(TRACES, chart)} == after
    swatches = page.eval_on_selector_all("#compare-legend li", "ls => ls.map(l => [l.dataset.key, l.querySelector('.swatch').style.background])")
    assert len(swatches) == 2 and all(k in after for k, _ in swatches)

    # The same colour in the run's own page, where train and test differ by line style instead.
    page.click(f"[data-testid=compare-run-{c['id']}] a[data-go-view=detail]")
    wait_for_chart(page, "detail-curves", 4)
    lines = page.evaluate("document.getElementById('detail-curves').data.map((t) => t.line)")
    assert {line["color"] for line in lines} == {after[f"run-{c['id']}"]}
    assert lines[0]["dash"] == "dot" and lines[1].get("dash") in (None, "solid")

    # Twenty consecutive ids, twenty colours.
    distinct = page.evaluate("""async () => { const { runColor } = await import('/static/js/plots.js');
      return [1, 7, 100, 118].map((start) => new Set(Array.from({ length: 20 }, (_, i) => runColor(start + i))).size); }""")
    assert distinct == [20, 20, 20, 20]


def test_a_missing_run_is_named_as_not_found(page, server, finished_runs):
    a = finished_runs[0]
    page.goto(f"{server.url}/#view=compare&sel={a['id']},99999")
    toast = page.locator(".toast", has_text="99999")
    toast.wait_for()
    assert toast.locator(".toast-text").text_content() == (
        "Run #99999 was not found (deleted, or never created); it is left out of the comparison.")
    page.wait_for_function(f"location.hash.includes('sel={a['id']}') && !location.hash.includes('99999')")


def test_bars_zoom_to_the_data_and_say_so(page, server, finished_runs):
    compare(page, server, [r["id"] for r in finished_runs])
    bars = page.evaluate("""() => { const el = document.getElementById('compare-best');
      return { range: el.layout.xaxis.range, title: el.layout.xaxis.title.text, x: el.data[0].x }; }""")
    best = [r["best_test_acc"] for r in finished_runs]
    low, high = bars["range"]
    assert 0.5 < low < min(best) and max(best) < high <= 1, bars
    assert high - low < 0.2  # a point's difference is a visible share of the bar
    assert f"axis starts at {low * 100:.1f}%, not 0" in bars["title"]

    run = finished_runs[2]
    page.goto(f"{server.url}/#view=detail&run={run['id']}")
    wait_for_chart(page, "detail-perclass")
    per_class = server.api.get(f"/runs/{run['id']}/artifacts").json()["per_class_acc"]
    axis = page.evaluate("(() => { const a = document.getElementById('detail-perclass').layout.yaxis;"
                         " return { range: a.range, title: a.title.text }; })()")
    low, high = axis["range"]
    assert 0.5 < low < min(per_class) and max(per_class) < high <= 1, axis
    assert "axis starts at" in axis["title"]


def test_scatter_context_labels_ticks_and_time(page, server, finished_runs, tiny_runs):
    compare(page, server, [r["id"] for r in finished_runs])
    tiny = {r["id"] for r in tiny_runs}

    def context_ids():
        return set(page.evaluate("""() => document.getElementById('compare-params').data
          .find((t) => t.name === 'other finished runs').text.map((s) => Number(s.split(' ')[0].slice(1)))"""))

    # By default only runs trained on the same data: the tiny ones stay out, and out of the axes.
    assert page.input_value("#compare-ctx") == "data"
    assert not context_ids() & tiny
    low = page.evaluate("document.getElementById('compare-params').layout.yaxis.range[0]")
    assert low > max(r["best_test_acc"] for r in tiny_runs)
    page.select_option("#compare-ctx", "dataset")
    page.wait_for_function("location.hash.includes('ctx=dataset')")
    assert tiny <= context_ids()
    page.select_option("#compare-ctx", "none")
    page.wait_for_function("location.hash.includes('ctx=none')")
    assert context_ids() == set()

    # Log axes label their ticks with whole values ("20k", "5 s"), never a bare "2" or "5".
    for chart in ("compare-params", "compare-time"):
        ticks = page.evaluate(f"document.getElementById({chart!r}).layout.xaxis.ticktext")
        assert len(ticks) >= 2 and all(any(u in t for u in "ks") or len(t) > 2 for t in ticks), ticks
    tick_texts = page.eval_on_selector_all("#compare-params .xtick text", "ts => ts.map(t => t.textContent)")
    assert tick_texts and not set(tick_texts) & {str(d) for d in range(10)}

    # Like with like: seconds per epoch, or seconds to the lowest best accuracy compared.
    page.select_option("#compare-tx", "epoch")
    page.wait_for_function("location.hash.includes('tx=epoch')")
    per_epoch = {t["key"]: t["x"][0] for t in page.evaluate(TRACES, "compare-time")}
    for r in finished_runs:
        assert math.isclose(per_epoch[f"run-{r['id']}"], r["total_seconds"] / r["epochs_done"], rel_tol=1e-6)
    page.select_option("#compare-tx", "target")
    page.wait_for_function("location.hash.includes('tx=target')")
    target = math.floor(min(r["best_test_acc"] for r in finished_runs) * 1000) / 1000
    assert f"{target * 100:.1f}%" in page.text_content("#compare-time-note")
    to_target = {t["key"]: t["x"][0] for t in page.evaluate(TRACES, "compare-time")}
    for r in finished_runs:
        epochs = server.api.get(f"/runs/{r['id']}/metrics").json()["epochs"]
        first = next(e for e in epochs if e["test_acc"] >= target)
        assert math.isclose(to_target[f"run-{r['id']}"], first["wall_seconds"], rel_tol=1e-6)
    names = page.evaluate("document.getElementById('compare-time').data.map((t) => t.name)")
    assert "other finished runs" not in names  # they have no curve here


def test_a_diverged_run_draws_its_loss_up_to_the_nan(page, server):
    run = server.wait_run(server.post("/runs", DIVERGING)["id"], "failed")
    assert run["error"] == "loss became NaN at epoch 1" and not run["traceback"]
    progress = server.api.get(f"/runs/{run['id']}/metrics").json()["progress"]
    assert progress, "the worker kept no progress before the NaN"
    assert all(math.isfinite(p["train_loss"]) for p in progress)
    assert [p["epoch"] for p in progress] == sorted(p["epoch"] for p in progress)

    page.goto(f"{server.url}/#view=detail&run={run['id']}")
    wait_for_chart(page, "detail-curves", 4)
    curves = page.evaluate("""() => { const el = document.getElementById('detail-curves');
      return { x: el.data[0].x, y: el.data[0].y, notes: el.layout.annotations.map((a) => a.text),
               loss: el._fullLayout.yaxis.range, acc: el._fullLayout.yaxis2.range }; }""")
    assert curves["x"] == [p["epoch"] for p in progress]
    assert curves["y"] == [p["train_loss"] for p in progress]
    assert any("loss became NaN at epoch 1" in n for n in curves["notes"])
    # A few progress points do not stretch the axes past what a loss or an accuracy can be.
    assert curves["loss"][0] >= 0 and 0 <= curves["acc"][0] <= curves["acc"][1] <= 1, curves
    assert page.text_content("#detail-error-message") == "loss became NaN at epoch 1"
    assert page.locator("#detail-traceback-box").is_hidden()  # no traceback: no empty panel

    # The loss on a log scale, and smoothing (off by default), kept in the URL.
    page.check("#detail-logy")
    page.wait_for_function("document.getElementById('detail-curves').layout.yaxis.type === 'log'")
    assert hash_state(page)["logy"] == "1"
    page.fill("#detail-smooth", "0.9")
    page.wait_for_function("document.getElementById('detail-curves').data.length === 6")
    smoothed = page.evaluate("document.getElementById('detail-curves').data[0].y")
    assert smoothed[0] == pytest.approx(progress[0]["train_loss"])  # debiased: starts at the first point
    assert smoothed[-1] < progress[-1]["train_loss"]
    assert hash_state(page)["smooth"] == "0.9"
    screenshot(page, "detail_diverged")


def test_live_cards_have_no_empty_chart_nor_text_over_ticks(page, idle):
    server = idle
    queued = [server.post("/runs", {"model": "mnist-logreg", "name": f"live card {i}", "epochs": 1})["id"] for i in range(2)]
    # A run a worker has just taken, before its first point (no worker here: set by hand).
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    server.query("UPDATE run SET status = 'running', started_at = ?, heartbeat_at = ?, worker = 'e2e-ghost' WHERE id = ?",
                 now, now, queued[0])
    page.goto(f"{server.url}/#view=runs")
    chart = f"live-chart-{queued[0]}"
    wait_for_chart(page, chart, 4)
    notes = page.evaluate(BOXES, f"#{chart} .annotation-text")
    assert notes and notes[0][4] == "waiting for the first batches…"
    axes = ", ".join(f"#{chart} {part}" for part in (".xtick text", ".ytick text", ".x2tick text", ".y2tick text",
                                                        ".g-xtitle", ".g-ytitle", ".g-x2title", ".g-y2title"))
    covered = [t for t in page.evaluate(BOXES, axes) if t[4] and overlap(t, notes[0])]
    assert not covered, covered

    # Cancelled in the queue: the card says so, with no chart.
    card = page.locator(f"[data-testid=live-card-{queued[1]}]")
    if not card.count():  # the panel shows the head of the queue; this page launched nothing
        page.evaluate(f"import('/static/js/store.js').then((s) => s.fetchRun({queued[1]}).then(s.launched))")
    card.wait_for()
    card.locator(f"[data-testid=cancel-{queued[1]}]").click()
    card.locator("[data-status=cancelled]").wait_for()
    page.wait_for_timeout(500)
    assert card.locator(".js-plotly-plot").count() == 0
    assert card.locator(".live-chart").is_hidden()
    server.query("UPDATE run SET status = 'cancelled' WHERE id = ?", queued[0])  # before a reaper requeues it


@pytest.mark.parametrize("width", [1440, 800])
def test_toasts_stay_few_and_clear_of_the_table(browser, idle, width):
    server = idle
    ids = [server.post("/runs", {"model": "mnist-logreg", "name": f"toast {i}", "epochs": 1})["id"] for i in range(4)]
    with _page(browser, TOKEN, {"width": width, "height": 900}) as page:
        page.goto(f"{server.url}/#view=runs&sort=id&order=desc")
        for run_id in ids:
            page.locator(f"#runs-tbody [data-testid=cancel-{run_id}]").wait_for()
        for run_id in ids:
            page.click(f"#runs-tbody [data-testid=cancel-{run_id}]")
        for run_id in ids:
            page.wait_for_selector(f"#runs-tbody [data-testid=status-{run_id}][data-status=cancelled]")
        assert page.locator(".toast").count() <= 2
        for _ in range(3):
            page.evaluate("import('/static/js/widgets.js').then((w) => w.toast('Could not load runs: offline', 'error'))")
        page.wait_for_function("document.querySelectorAll('.toast').length >= 1")
        assert page.locator(".toast").count() <= 2
        assert page.locator(".toast", has_text="offline").locator(".toast-count").text_content() == "×3"

        toasts = page.evaluate(BOXES, ".toast")
        time_col = page.evaluate("[...document.querySelectorAll('#runs-table thead th')].findIndex((th) => th.dataset.sort === 'total_seconds') + 1")
        guarded = page.evaluate(BOXES, f"#runs-tbody td:nth-child({time_col}), #runs-tbody .col-actions .btn")
        assert guarded
        hidden = [g for g in guarded for t in toasts if overlap(t, g)]
        assert not hidden, f"toasts cover {hidden[:3]}"
        screenshot(page, f"toasts_{width}")


def test_compare_two_groups_and_read_the_verdict(wide_page, server, finished_runs, bn_groups):
    page = wide_page
    bn1, bn2 = bn_groups
    # From the runs table: one run of each group, then their groups.
    page.goto(f"{server.url}/#view=runs")
    for group in (bn1, bn2):
        page.check(f"[data-testid=select-{group['runs'][0]['id']}]")
    page.click("#compare-button")
    wait_for_chart(page, "compare-acc", 2)
    page.click("[data-testid=compare-as-groups]")
    page.wait_for_function(f"location.hash.includes('groups={bn1['key']},{bn2['key']}')")
    assert "sel=" not in page.evaluate("location.hash")

    verdict = page.locator(f"[data-testid=verdict-{bn2['key']}]")
    verdict.wait_for()
    answer = server.api.get("/groups/compare", params={"a": bn1["key"], "b": bn2["key"]}).json()
    words = verdict.locator(".verdict-words").text_content()
    assert words == answer["verdict"]["text"]
    assert words.startswith(("within seed noise:", "better:", "worse:"))
    text = " ".join(verdict.text_content().split())
    assert f"{answer['verdict']['diff'] * 100:+.2f}".replace("-", "−") in text and "95% CI" in text
    assert "What changed:" in text and answer["changes"][0]["text"] in text

    # Each group: a mean curve in a ±1 std band, a point with error bars, a bar with its std.
    wait_for_chart(page, "compare-acc", 4)
    bands = page.evaluate("document.getElementById('compare-acc').data.filter((t) => t.fill === 'toself').map((t) => t.meta.key)")
    assert bands == [bn1["key"], bn2["key"]]
    groups = {g["key"]: server.api.get(f"/groups/{g['key']}").json() for g in bn_groups}
    points = {t["key"]: t for t in page.evaluate(TRACES, "compare-params")}
    for key, group in groups.items():
        assert points[key]["y"] == [pytest.approx(group["best_test_acc"]["mean"])]
        assert points[key]["ey"]["array"] == [pytest.approx(group["best_test_acc"]["std"])]
        assert points[key]["ey"]["visible"] is True
        means = [p["test_acc"]["mean"] for p in group["curve"]]
        line = next(t for t in page.evaluate(TRACES, "compare-acc") if t["key"] == key)
        assert line["y"] == pytest.approx(means)
    bars = page.evaluate("document.getElementById('compare-best').data[1]")
    assert bars["error_x"]["array"] == [pytest.approx(groups[k]["best_test_acc"]["std"]) for k in (bn1["key"], bn2["key"])]

    # One group back into its runs: beside the other group each names its preset and its seed;
    # three seeds of one preset alone are told apart by the seed only.
    page.click(f"[data-testid=compare-group-{bn1['key']}] [data-to-runs]")
    for run in bn1["runs"]:
        chip = page.locator(f"[data-testid=compare-run-{run['id']}] a[data-go-view=detail]")
        chip.wait_for()
        label = chip.text_content()
        assert label.startswith(f"#{run['id']} mnist-3fc-bn1-51k") and label.endswith(f" · seed {run['config']['seed']}")
    wait_for_chart(page, "compare-params", 6)
    page.wait_for_timeout(300)
    labels = page.evaluate(BOXES, "#compare-params .textpoint text")
    assert len(labels) >= 2
    assert not [(a[4], b[4]) for i, a in enumerate(labels) for b in labels[i + 1:] if overlap(a, b)]
    compare(page, server, [r["id"] for r in bn1["runs"]])
    chips = page.eval_on_selector_all("#compare-legend li a[data-go-view=detail]", "as => as.map((a) => a.textContent)")
    assert chips == [f"#{r['id']} · seed {r['config']['seed']}" for r in bn1["runs"]]
    assert page.evaluate("document.getElementById('compare-acc').data.map((t) => t.name)") == chips

    # The README's picture: three runs of different sizes and the bn1-vs-bn2 groups.
    page.goto(f"{server.url}/#view=compare&sel={','.join(str(r['id']) for r in finished_runs)}"
              f"&groups={bn1['key']},{bn2['key']}")
    page.reload()
    wait_for_chart(page, "compare-acc", 7)
    wait_for_chart(page, "compare-params", 8)
    page.locator(f"[data-testid=verdict-{bn2['key']}]").wait_for()
    page.wait_for_timeout(500)
    screenshot(page, "compare_groups", REPO / "docs" / "compare.png")
