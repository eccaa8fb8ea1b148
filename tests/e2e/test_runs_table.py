"""The runs table in a real browser against the real server (issues 13 and 10): a header that
stays in view and sorts from the keyboard, a table that fits 800 pixels, bulk actions on every
run matching a filter, tags and notes, config columns with their filters, and groups of seeds
launched from the form.

    .venv/bin/python -m pytest tests/e2e/test_runs_table.py -q
"""

import csv
import io
import re
import statistics

import pytest

from tests.e2e.browser import SERVER_ENV, TOKEN, screenshot
from tests.stack import Stack

pytestmark = pytest.mark.e2e

# Is the element's box inside the table's visible box, and on top there (not covered)?
IN_VIEW = """(el) => {
  const box = el.getBoundingClientRect();
  const wrap = document.getElementById('runs-table').parentElement.getBoundingClientRect();
  const x = box.left + box.width / 2, y = box.top + box.height / 2;
  const top = document.elementFromPoint(x, y);
  return box.width > 0 && box.left >= wrap.left - 0.5 && box.right <= wrap.right + 0.5
    && box.top >= 0 && box.bottom <= window.innerHeight && (top === el || el.contains(top));
}"""


@pytest.fixture(scope="module")
def table_server(tmp_path_factory):
    """A server without a worker, so runs stay queued as they are made."""
    with Stack(tmp_path_factory.mktemp("zoolab-table"), token=TOKEN, env=SERVER_ENV, worker=False) as s:
        yield s


def _queue(server, n: int, **body) -> list[int]:
    ids = []
    while len(ids) < n:
        ids += server.post("/runs", {"model": "mnist-logreg", "seeds": min(20, n - len(ids)), **body})["run_ids"]
    return ids


def _focused_sort(page) -> str | None:
    return page.evaluate("document.activeElement.closest('th[data-sort]')?.dataset.sort ?? null")


def test_header_stays_in_view_and_sorts_from_the_keyboard(page, table_server):
    server = table_server
    _queue(server, 10, name="sticky small", epochs=1)
    _queue(server, 50, name="sticky big", epochs=3)
    page.goto(f"{server.url}/#view=runs&q=sticky")
    page.wait_for_function("document.querySelectorAll('#runs-tbody tr').length === 50")

    # Far down the page of rows, the header is still there, on top of the rows.
    page.locator("#runs-tbody tr:nth-child(48)").scroll_into_view_if_needed()
    assert page.locator("#runs-tbody tr:nth-child(48)").evaluate(IN_VIEW)
    for key in ("name", "best_test_acc", "total_seconds"):
        assert page.locator(f"#runs-table th[data-sort={key}]").evaluate(IN_VIEW), key

    # Tab reaches the headers; Enter and Space sort, and the focus stays on the header.
    page.focus("#select-page")
    page.keyboard.press("Tab")
    assert _focused_sort(page) == "name"
    while _focused_sort(page) != "epochs_done":
        page.keyboard.press("Tab")
        assert _focused_sort(page) is not None, "Tab left the header before reaching Epochs"
    page.keyboard.press("Enter")
    page.wait_for_function("location.hash.includes('sort=epochs_done')")
    header = page.locator("#runs-table th[data-sort=epochs_done]")
    assert header.get_attribute("aria-sort") == "descending" and "order=asc" not in page.evaluate("location.hash")
    page.wait_for_function("document.querySelector('#runs-tbody tr').textContent.includes('0 / 3')")
    assert _focused_sort(page) == "epochs_done"
    page.keyboard.press("Space")
    page.wait_for_function("location.hash.includes('order=asc')")
    assert header.get_attribute("aria-sort") == "ascending"
    page.wait_for_function("document.querySelector('#runs-tbody tr').textContent.includes('0 / 1')")
    assert _focused_sort(page) == "epochs_done"

    # The arrow of every numeric column, sorted, sits whole inside its header and in view.
    for key in ("params", "best_test_acc", "final_test_acc", "epochs_done", "total_seconds", "images_per_second"):
        page.click(f"#runs-table th[data-sort={key}] button")
        page.wait_for_function(f"location.hash.includes('sort={key}')")
        th = page.locator(f"#runs-table th[data-sort={key}]")
        arrow = th.locator(".sort-arrow")
        assert th.get_attribute("aria-sort") in ("ascending", "descending")
        assert arrow.evaluate("(a) => getComputedStyle(a, '::before').content") in ('"▲"', '"▼"')
        inside = arrow.evaluate("""(a) => { const r = a.getBoundingClientRect(), t = a.closest('th').getBoundingClientRect();
          return r.width > 0 && r.left >= t.left && r.right <= t.right && r.top >= t.top && r.bottom <= t.bottom; }""")
        assert inside and arrow.evaluate(IN_VIEW.replace("(top === el || el.contains(top))", "true")), key
    screenshot(page, "runs_sticky_header")


def test_table_fits_800_pixels(medium_page, server, finished_runs):
    page = medium_page
    page.goto(f"{server.url}/#view=runs&status=finished")
    page.wait_for_selector(f"[data-testid=run-row-{finished_runs[0]['id']}]")
    page.wait_for_timeout(300)
    assert page.evaluate("document.getElementById('runs-table').parentElement.scrollWidth <= document.getElementById('runs-table').parentElement.clientWidth")
    assert page.is_hidden("[data-testid=runs-scroll-cue]")
    for run in finished_runs:  # (other tests' runs may push a row below the fold: scroll to it, never sideways)
        page.locator(f"[data-testid=run-row-{run['id']}]").scroll_into_view_if_needed()
        for testid in (f"best-{run['id']}", f"final-{run['id']}", f"time-{run['id']}", f"rerun-{run['id']}",
                       f"edit-{run['id']}"):
            assert page.locator(f"[data-testid={testid}]").evaluate(IN_VIEW), testid
        epochs = page.locator(f"[data-testid=run-row-{run['id']}] td", has_text=re.compile(r"^\d+ / \d+$"))
        assert epochs.evaluate(IN_VIEW)
    for key in ("final_test_acc", "epochs_done", "total_seconds"):
        assert page.locator(f"#runs-table th[data-sort={key}]").evaluate(IN_VIEW), key
    screenshot(page, "runs_800")

    # Picked columns that no longer fit: the table says so, and the actions stay in view.
    page.goto(f"{server.url}/#view=runs&status=finished&cols=changes,lr,batch_size,optimizer,seed")
    page.wait_for_selector("#runs-table th[data-sort='config.optimizer']")
    page.wait_for_selector("[data-testid=runs-scroll-cue]:visible")
    for run in finished_runs:
        page.locator(f"[data-testid=run-row-{run['id']}]").scroll_into_view_if_needed()
        assert page.locator(f"[data-testid=rerun-{run['id']}]").evaluate(IN_VIEW)
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 1
    screenshot(page, "runs_800_picked_columns")


def test_bulk_delete_of_a_hundred_runs_matching_a_filter(page, table_server):
    server = table_server
    doomed = _queue(server, 100, name="doomed batch", epochs=1)
    kept = _queue(server, 2, name="kept batch", epochs=1)
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{server.url}/#view=runs&q=doomed")
    page.wait_for_function("document.getElementById('runs-pageinfo').textContent === '1–50 of 100 runs'")
    page.check("#select-page")
    assert page.text_content("[data-testid=bulk-count]") == "50 runs selected"
    page.click("[data-testid=select-matching]")  # not only the page: all 100 that match
    page.wait_for_function("document.getElementById('bulk-count').textContent === '100 runs selected'")
    page.click("[data-testid=bulk-delete]")
    page.wait_for_function("document.getElementById('runs-pageinfo').textContent.endsWith('of 0 runs')")
    page.locator(".toast", has_text="Deleted 100 runs.").wait_for()
    assert page.is_hidden("[data-testid=bulk-bar]") and "sel=" not in page.evaluate("location.hash")
    for run_id in doomed[::10]:
        assert server.get(f"/runs/{run_id}").status_code == 404
    assert server.get("/runs", params={"q": "doomed"}).json()["total"] == 0
    assert [server.run(i)["status"] for i in kept] == ["queued", "queued"]
    screenshot(page, "runs_bulk_deleted")

    # Cancelled before it started: no time, not "0.0 s"; bulk cancel says what it skipped.
    page.goto(f"{server.url}/#view=runs&q=kept")
    page.check(f"[data-testid=select-{kept[0]}]")
    page.click("[data-testid=bulk-cancel]")
    page.wait_for_selector(f"#runs-tbody [data-testid=status-{kept[0]}][data-status=cancelled]")
    assert page.text_content(f"[data-testid=time-{kept[0]}]") == "—"
    page.click("[data-testid=bulk-cancel]")
    page.locator(".toast", has_text=f"Skipped 1 run (#{kept[0]}: it is cancelled; only queued or running").wait_for()


def test_labels_edit_round_trip_and_tag_filter(page, table_server):
    server = table_server
    a, b, c = _queue(server, 3, name="labelled", epochs=1)
    page.goto(f"{server.url}/#view=runs&q=labelled")
    page.click(f"[data-testid=edit-{a}]")
    page.fill("[data-testid=edit-tags]", "Baseline")
    page.click("[data-testid=edit-save]")
    error = page.locator("[data-testid=edit-error]")
    error.wait_for()
    assert "'Baseline' is not a tag (write 'baseline')" in error.text_content()
    page.fill("[data-testid=edit-name]", "labelled baseline")
    page.fill("[data-testid=edit-tags]", "baseline lr-sweep")
    page.fill("[data-testid=edit-notes]", "the notes' step 4\nwith a second line")
    page.click("[data-testid=edit-save]")
    page.wait_for_selector("[data-testid=edit-dialog]:not([open])", state="attached")
    page.wait_for_selector(f"[data-testid=tags-{a}] .tag[data-tag=lr-sweep]")
    assert page.text_content(f"[data-testid=run-link-{a}]").endswith("labelled baseline")
    assert "the notes' step 4" in page.text_content(f"[data-testid=run-row-{a}]")
    run = server.run(a)
    assert (run["name"], run["tags"], run["notes"]) == ("labelled baseline", ["baseline", "lr-sweep"],
                                                        "the notes' step 4\nwith a second line")

    # Tag two runs at once, then filter: several tags mean all of them.
    page.check(f"[data-testid=select-{b}]")
    page.check(f"[data-testid=select-{a}]")
    page.fill("[data-testid=bulk-tags]", "lr-sweep")
    page.click("[data-testid=bulk-tag]")
    page.wait_for_selector(f"[data-testid=tags-{b}] .tag[data-tag=lr-sweep]")
    page.click("[data-testid=clear-selection]")
    page.fill("#filter-tag", "lr-sweep")
    page.wait_for_function("document.getElementById('runs-pageinfo').textContent.endsWith('of 2 runs')")
    page.fill("#filter-tag", "lr-sweep baseline")
    page.wait_for_function("document.getElementById('runs-pageinfo').textContent.endsWith('of 1 run')")
    assert page.locator("#runs-tbody tr").evaluate_all("rs => rs.map(r => +r.dataset.runId)") == [a]
    page.fill("#filter-tag", "")
    page.wait_for_function("document.getElementById('runs-pageinfo').textContent.endsWith('of 3 runs')")
    page.click(f"[data-testid=tags-{b}] .tag[data-tag=lr-sweep]")  # a tag filters by itself
    page.wait_for_function("location.hash.includes('tag=lr-sweep')")
    page.wait_for_function("document.getElementById('runs-pageinfo').textContent.endsWith('of 2 runs')")

    export = page.get_attribute("#runs-export", "href")
    assert "tag=lr-sweep" in export and "sort=id" in export and "order=desc" in export
    rows = list(csv.DictReader(io.StringIO(page.request.get(server.url + export).text())))
    assert [(int(r["id"]), r["tags"]) for r in rows] == [(b, "lr-sweep"), (a, "baseline lr-sweep")]
    assert rows[1]["notes"] == "the notes' step 4\nwith a second line"
    assert c not in [int(r["id"]) for r in rows]
    screenshot(page, "runs_tags")


def test_config_columns_filter_sort_and_refusals(page, table_server):
    server = table_server
    for lr, batch in ((0.001, 64), (0.005, 128), (0.02, 256), (0.1, 32)):
        server.post("/runs", {"model": "mnist-logreg", "name": "configured", "lr": lr, "batch_size": batch})
    page.goto(f"{server.url}/#view=runs&q=configured")
    page.wait_for_function("document.getElementById('runs-pageinfo').textContent.endsWith('of 4 runs')")
    page.click("[data-testid=column-picker]")
    for key in ("lr", "batch_size", "changes"):
        page.check(f"[data-testid=col-{key}]")
    page.wait_for_function("new URLSearchParams(location.hash.slice(1)).get('cols')?.split(',').length === 3")
    assert set(page.evaluate("new URLSearchParams(location.hash.slice(1)).get('cols')").split(",")) == {
        "lr", "batch_size", "changes"}
    page.click("[data-testid=column-picker]")

    def cells():
        return page.eval_on_selector_all("#runs-tbody tr", "rs => rs.map(r => r.querySelector('td.cfg-lr code').textContent)")

    assert sorted(cells(), key=float) == ["0.001", "0.005", "0.02", "0.1"]
    assert "lr 0.02" in page.text_content("#runs-tbody")  # changed vs preset

    page.fill("[data-testid=filter-config-lr]", "0.004..0.05")
    page.keyboard.press("Enter")
    page.wait_for_function("document.getElementById('runs-pageinfo').textContent.endsWith('of 2 runs')")
    assert sorted(cells(), key=float) == ["0.005", "0.02"]
    page.click("#runs-table th[data-sort='config.lr'] button")
    page.wait_for_function("location.hash.includes('sort=config.lr')")
    page.wait_for_function("document.querySelector('#runs-tbody td.cfg-lr code').textContent === '0.005'")
    assert cells() == ["0.005", "0.02"]

    page.reload()  # the picked columns, their filter and the order survive
    page.wait_for_function("document.getElementById('runs-pageinfo').textContent.endsWith('of 2 runs')")
    assert page.input_value("[data-testid=filter-config-lr]") == "0.004..0.05" and cells() == ["0.005", "0.02"]
    export = page.get_attribute("#runs-export", "href")
    assert "config.lr=0.004..0.05" in export and "sort=config.lr" in export and "order=asc" in export
    rows = list(csv.DictReader(io.StringIO(page.request.get(server.url + export).text())))
    assert [r["config.lr"] for r in rows] == ["0.005", "0.02"]

    # A filter the server refuses shows its message, and goes away with the filter.
    page.fill("[data-testid=filter-config-lr]", "fast")
    page.keyboard.press("Enter")
    error = page.locator("[data-testid=runs-error]")
    error.wait_for()
    assert "config.lr takes a number, a range lo..hi or `none`" in error.text_content()
    page.goto(f"{server.url}/#view=runs&q=configured&config.nope=1")
    page.wait_for_function("document.getElementById('runs-error').textContent.includes('nope')")
    message = server.get("/runs", params={"config.nope": "1"}).json()["detail"][0]["msg"]
    assert message in page.text_content("[data-testid=runs-error]") and "config.batch_size" in message
    page.click("[data-testid=runs-active-filters] [data-unfilter=nope]")
    page.wait_for_function("document.getElementById('runs-error').hidden")
    page.wait_for_function("document.getElementById('runs-pageinfo').textContent.endsWith('of 4 runs')")
    screenshot(page, "runs_config_columns")


def test_three_seeds_from_the_form_are_one_group(page, server):
    page.goto(f"{server.url}/#view=launch&preset=mnist-logreg")
    page.wait_for_selector("#f-seeds")
    page.fill("#f-name", "e2e three seeds")
    page.fill("#f-epochs", "1")
    page.fill("#f-train_subset", "2000")
    page.fill("#f-test_subset", "2000")
    page.fill("#f-seeds", "3")
    page.click("#launch-submit")
    page.wait_for_function("location.hash.includes('view=runs')")
    runs = server.api.get("/runs", params={"q": "e2e three seeds"}).json()["items"]
    assert sorted(r["config"]["seed"] for r in runs) == [0, 1, 2] and len({r["group_key"] for r in runs}) == 1
    key = runs[0]["group_key"]
    runs = server.wait_runs(sorted(r["id"] for r in runs))

    page.fill("#filter-q", "e2e three seeds")
    page.wait_for_function("location.hash.includes('q=e2e')")
    page.check("[data-testid=group-toggle]")
    page.wait_for_function("location.hash.includes('grouped=1')")
    row = page.locator(f"[data-testid=group-row-{key}]")
    row.wait_for()
    page.wait_for_function(f"document.querySelector('[data-testid=group-row-{key}]').textContent.includes('3 finished')")
    assert page.locator("#runs-tbody tr.group-row").count() == 1
    assert "3 runs · seeds 0, 1, 2" in row.text_content()
    best = [r["best_test_acc"] * 100 for r in runs]
    assert page.text_content(f"[data-testid=group-best-{key}]") == (
        f"{statistics.fmean(best):.2f}% ± {statistics.stdev(best):.2f}")

    page.click(f"[data-testid=expand-{key}]")
    page.wait_for_function(f"document.querySelectorAll('tr[data-member=\"{key}\"]').length === 3")
    members = page.locator(f"tr[data-member='{key}']").evaluate_all("rs => rs.map(r => +r.dataset.runId)")
    assert members == [r["id"] for r in runs]
    assert page.get_attribute(f"[data-testid=expand-{key}]", "aria-expanded") == "true"
    screenshot(page, "runs_group_expanded")

    # Re-run offers a new seed: the smallest one the group lacks.
    page.click(f"[data-testid=rerun-{runs[1]['id']}]")
    page.locator(".toast", has_text="with seed 3").wait_for()
    page.wait_for_function(f"document.querySelector('[data-testid=group-row-{key}]').textContent.includes('4 runs')")
    newest = server.api.get("/runs", params={"q": "e2e three seeds", "limit": 1}).json()["items"][0]
    assert newest["config"]["seed"] == 3 and newest["group_key"] == key
