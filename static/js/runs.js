// The Runs view: a sortable, filterable, paginated table of runs (sorting, filtering and
// paging happen on the server, so a thousand runs cost one page), updated in place by the
// global event stream, with row actions, bulk actions on a selection (bulk.js) and the
// selection for Compare. Columns (columns.js) include any config key a user picks, filtered
// under its header; tags filter too. Groups of seeds can show as one row each (GET /groups),
// expanded to their runs.

import { api, loadOptions, query } from './api.js';
import * as bulk from './bulk.js';
import { cellsHtml, columnsFor, groupSort, headerHtml, pickerHtml } from './columns.js';
import { esc, int } from './format.js';
import * as labels from './labels.js';
import * as live from './live.js';
import { fitCharts } from './plots.js';
import { readState, setState } from './state.js';
import * as store from './store.js';
import { ACTIVE, bindActions, debounce, progressHtml } from './widgets.js';

// Columns whose first click sorts high to low.
const DESC_FIRST = new Set(['params', 'best_test_acc', 'final_test_acc', 'epochs_done', 'total_seconds',
  'images_per_second', 'created_at', 'id']);

const $ = (id) => document.getElementById(id);
const tbody = () => $('runs-tbody');
const rowOf = (id) => tbody().querySelector(`tr[data-run-id="${id}"]`);
let configKeys = {}; // config key -> 'number' | 'text' (GET /zoo/options)
let columns = columnsFor('', configKeys);
let headerKey = null; // the picked columns the header is drawn for
let pageIds = []; // the runs of the page (runs mode)
let groups = new Map(); // key -> group of the page (groups mode)
const expanded = new Set(); // group keys shown open
let shown = new Set(); // the ids of the run rows (in groups mode: of the open groups)
let loadedKey = null;
let loadSeq = 0;
let total = 0;
let visible = false;
const scheduleReload = debounce(() => load(readState()), 500);

const tagsOf = (state) => state.tag.split(',').filter(Boolean);

// The table's filters as query parameters of GET /runs, /groups, /runs/ids and /runs.csv.
function filters(state) {
  const config = Object.fromEntries(Object.entries(state.config).map(([key, v]) => [`config.${key}`, v]));
  return { dataset: state.dataset, status: state.status, q: state.q, tag: tagsOf(state), ...config };
}

function listParams(state) {
  const sort = state.grouped ? (groupSort(state.sort) ?? 'last_id') : state.sort;
  return { ...filters(state), sort, order: state.order, limit: state.limit, offset: state.offset };
}
const pageKey = (state) => JSON.stringify([state.grouped, listParams(state)]);

function renderRow(run, tr = null) {
  const row = tr || document.createElement('tr');
  row.dataset.runId = run.id;
  row.setAttribute('data-testid', `run-row-${run.id}`);
  const html = cellsHtml(columns, run, 'run');
  if (row.dataset.sig !== html) {
    row.dataset.sig = html;
    row.innerHTML = html;
  }
  row.classList.toggle('active', ACTIVE.has(run.status));
  const selected = readState().sel.includes(run.id);
  row.querySelector('.select-run').checked = selected;
  row.classList.toggle('selected', selected);
  return row;
}

// Progress events change only the progress cell, so the rest of the row stays still.
function renderProgress(run) {
  const slot = rowOf(run.id)?.querySelector('.slot-progress');
  const html = progressHtml(run);
  if (slot && slot.innerHTML !== html) slot.innerHTML = html;
}

function renderTable(items) {
  const body = tbody();
  const existing = new Map([...body.children].map((tr) => [Number(tr.dataset.runId), tr]));
  pageIds = items.map((run) => run.id);
  shown = new Set(pageIds);
  items.forEach((run, i) => {
    const tr = renderRow(run, existing.get(run.id));
    existing.delete(run.id);
    if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] || null);
  });
  for (const tr of existing.values()) tr.remove();
  $('runs-empty').hidden = items.length > 0;
  renderSelection();
  updateScrollCue();
}

function groupRow(group) {
  const tr = document.createElement('tr');
  tr.className = 'group-row';
  tr.dataset.group = group.key;
  tr.setAttribute('data-testid', `group-row-${group.key}`);
  tr.innerHTML = cellsHtml(columns, group, 'group');
  return tr;
}

function renderGroups(items) {
  groups = new Map(items.map((g) => [g.key, g]));
  pageIds = [];
  shown = new Set();
  tbody().replaceChildren(...items.map(groupRow));
  $('runs-empty').hidden = items.length > 0;
  for (const key of expanded) {
    if (groups.has(key)) expand(key); else expanded.delete(key);
  }
  renderSelection();
  updateScrollCue();
}

// A group's runs, under its row, through the store (so events keep them current).
async function expand(key) {
  expanded.add(key);
  const head = tbody().querySelector(`tr[data-group="${key}"]`);
  head?.querySelector('.expand')?.setAttribute('aria-expanded', 'true');
  const page = await store.fetchPage({ group: key, sort: 'id', order: 'asc', limit: 1000 });
  const current = tbody().querySelector(`tr[data-group="${key}"]`);
  if (!current || !expanded.has(key)) return;
  collapseRows(key);
  current.after(...page.items.map((run) => {
    shown.add(run.id);
    const tr = renderRow(run);
    tr.classList.add('member');
    tr.dataset.member = key;
    return tr;
  }));
  renderSelection();
}

function collapseRows(key) {
  for (const tr of tbody().querySelectorAll(`tr[data-member="${key}"]`)) {
    shown.delete(Number(tr.dataset.runId));
    tr.remove();
  }
}

function toggleGroup(key) {
  if (expanded.has(key)) {
    expanded.delete(key);
    collapseRows(key);
    tbody().querySelector(`tr[data-group="${key}"] .expand`)?.setAttribute('aria-expanded', 'false');
  } else {
    expand(key).catch((e) => showError(`Could not load the group's runs: ${e.message}`));
  }
}

// The header is drawn again only when the columns change, so a sort keeps the focus.
function renderColumns(state) {
  const key = `${state.cols}|${Object.keys(configKeys).length}`;
  if (key === headerKey) return false;
  headerKey = key;
  columns = columnsFor(state.cols, configKeys);
  $('runs-thead').innerHTML = headerHtml(columns, state.config);
  $('runs-table').classList.toggle('has-picked', columns.some((c) => c.picked));
  $('column-picker-list').innerHTML = pickerHtml(state.cols, configKeys);
  return true;
}

function renderHeader(state) {
  const sortable = (key) => !state.grouped || groupSort(key) !== null;
  const sort = state.grouped && !sortable(state.sort) ? 'id' : state.sort;
  for (const th of document.querySelectorAll('#runs-table th[data-sort]')) {
    const active = th.dataset.sort === sort;
    th.setAttribute('aria-sort', active ? (state.order === 'asc' ? 'ascending' : 'descending') : 'none');
    th.classList.toggle('sorted', active);
    th.querySelector('button').disabled = !sortable(th.dataset.sort);
  }
  for (const input of document.querySelectorAll('#runs-table .col-filter')) {
    if (document.activeElement !== input) input.value = state.config[input.dataset.filter] ?? '';
  }
  $('filter-dataset').value = state.dataset;
  $('filter-status').value = state.status;
  for (const [id, text] of [['filter-q', state.q], ['filter-tag', tagsOf(state).join(' ')]]) {
    if (document.activeElement !== $(id)) $(id).value = text;
  }
  $('group-toggle').checked = Boolean(state.grouped);
  $('runs-limit').value = String(state.limit);
  $('runs-export').href = `/runs.csv${query({ ...filters(state), sort: state.sort, order: state.order })}`;
  // Filters on config keys without a column (from a shared link, say) are shown, to be removed.
  const picked = new Set(state.cols.split(','));
  $('runs-active-filters').innerHTML = Object.entries(state.config).filter(([key]) => !picked.has(key))
    .map(([key, v]) => `<span class="chip">config.${esc(key)} = ${esc(v)}<button type="button" class="icon-btn"
      data-unfilter="${esc(key)}" aria-label="Remove the filter on ${esc(key)}">×</button></span>`).join('');
}

function renderPager(state) {
  const count = state.grouped ? groups.size : pageIds.length;
  const from = total ? state.offset + 1 : 0;
  const to = Math.min(state.offset + count, total);
  const noun = state.grouped ? 'group' : 'run';
  $('runs-pageinfo').textContent = `${from}–${to} of ${int(total)} ${noun}${total === 1 ? '' : 's'}`;
  $('runs-prev').disabled = state.offset <= 0;
  $('runs-next').disabled = state.offset + state.limit >= total;
}

// The ids a page-wide checkbox selects: the page's runs, or every run of the page's groups.
const pageRunIds = () => (readState().grouped ? [...groups.values()].flatMap((g) => g.run_ids) : pageIds);

function renderSelection() {
  const state = readState();
  const sel = new Set(state.sel);
  const button = $('compare-button');
  button.disabled = sel.size === 0;
  button.textContent = sel.size ? `Compare ${sel.size} selected` : 'Compare';
  $('clear-selection').hidden = sel.size === 0;
  for (const box of tbody().querySelectorAll('.select-run')) {
    box.checked = sel.has(Number(box.dataset.run));
    box.closest('tr').classList.toggle('selected', box.checked);
  }
  for (const box of tbody().querySelectorAll('.select-group')) {
    const ids = groups.get(box.dataset.group)?.run_ids ?? [];
    box.checked = ids.length > 0 && ids.every((id) => sel.has(id));
    box.indeterminate = !box.checked && ids.some((id) => sel.has(id));
  }
  const ids = pageRunIds();
  const all = $('select-page');
  if (!all) return;
  all.checked = ids.length > 0 && ids.every((id) => sel.has(id));
  all.indeterminate = !all.checked && ids.some((id) => sel.has(id));
  const matching = state.grouped ? 0 : total; // groups count groups, not runs
  bulk.render(sel.size, all.checked && matching > ids.length ? matching : 0);
}

// When the picked columns are wider than the window, say so: the actions column stays in view.
function updateScrollCue() {
  const wrap = $('runs-wrap');
  const over = wrap.scrollWidth > wrap.clientWidth + 1;
  wrap.classList.toggle('overflowing', over);
  $('runs-scroll-cue').hidden = !over;
}

function showError(message) {
  $('runs-error').textContent = message;
  $('runs-error').hidden = !message;
}

async function load(state) {
  const seq = ++loadSeq;
  loadedKey = pageKey(state);
  if (renderColumns(state)) tbody().replaceChildren();
  renderHeader(state);
  try {
    const params = listParams(state);
    const page = state.grouped ? await api(`/groups${query(params)}`) : await store.fetchPage(params);
    if (seq !== loadSeq) return;
    showError('');
    total = page.total;
    if (page.items.length === 0 && state.offset > 0 && total > 0) {
      setState({ offset: Math.max(0, Math.floor((total - 1) / state.limit) * state.limit) });
      return;
    }
    if (state.grouped) renderGroups(page.items); else renderTable(page.items);
    renderPager(state);
  } catch (e) {
    if (seq !== loadSeq) return;
    // A refused filter (an unknown config key, a bad range): the server's message, no rows.
    showError(`The server refused this view: ${e.message}`);
    total = 0;
    tbody().replaceChildren();
    pageIds = [];
    groups = new Map();
    shown = new Set();
    renderPager(state);
    renderSelection();
  }
}

const gone = new Set();
const forgetGone = debounce(() => {
  const sel = readState().sel;
  if (sel.some((id) => gone.has(id))) setState({ sel: sel.filter((id) => !gone.has(id)) });
  gone.clear();
}, 200);

function onChange({ type, id, run }) {
  const state = readState();
  if (type === 'deleted') {
    rowOf(id)?.remove();
    shown.delete(id);
    gone.add(id); // a bulk delete brings hundreds: one change of the selection for them all
    forgetGone();
  } else if (type === 'launched') {
    addLaunched(run);
  } else if (type === 'progress') {
    if (shown.has(id)) renderProgress(run);
  } else if (shown.has(id)) {
    renderRow(run, rowOf(id));
  }
  // A new run, a claim that moves every queued run up one place, or a group's figures: fetch again.
  if (type === 'status' && (state.grouped || !shown.has(id) || run.status === 'running'
      || [...shown].some((x) => store.get(x)?.status === 'queued'))) {
    if (visible) scheduleReload(); else loadedKey = null;
  }
}

function belongsOnFirstPage(run, state) {
  const q = state.q.toLowerCase();
  return !state.grouped && !state.tag && !Object.keys(state.config).length
    && state.sort === 'id' && state.order === 'desc' && state.offset === 0
    && (!state.dataset || state.dataset === run.dataset) && (!state.status || state.status === run.status)
    && (!q || `${run.name} ${run.model}`.toLowerCase().includes(q));
}

// A run this page launched: in the table at once, before the page reloads.
function addLaunched(run) {
  if (!shown.has(run.id) && belongsOnFirstPage(run, readState())) {
    shown.add(run.id);
    pageIds.unshift(run.id);
    tbody().prepend(renderRow(run));
    total += 1;
    $('runs-empty').hidden = true;
    renderSelection();
  }
  loadedKey = null;
}

export function show(state) {
  visible = true;
  if (pageKey(state) !== loadedKey) load(state);
  else {
    if (renderColumns(state)) {
      tbody().replaceChildren();
      if (state.grouped) renderGroups([...groups.values()]); else renderTable(pageIds.map(store.get).filter(Boolean));
    }
    renderHeader(state);
    renderSelection();
  }
  live.refresh().catch(() => {});
  fitCharts($('live-panel'));
}

export function hide() {
  visible = false;
}

function sortBy(key) {
  const state = readState();
  const order = key === state.sort ? (state.order === 'asc' ? 'desc' : 'asc') : (DESC_FIRST.has(key) ? 'desc' : 'asc');
  setState({ sort: key, order, offset: 0 });
}

function setSelected(ids, on) {
  const sel = readState().sel;
  const drop = new Set(ids);
  setState({ sel: on ? [...new Set([...sel, ...ids])] : sel.filter((id) => !drop.has(id)) });
}

function bindTable() {
  const thead = $('runs-thead');
  // A header is a button: Tab reaches it, Enter and Space sort by it.
  thead.addEventListener('click', (e) => {
    const th = e.target.closest('th[data-sort]');
    if (th && !th.querySelector('button').disabled) sortBy(th.dataset.sort);
  });
  thead.addEventListener('change', (e) => {
    if (e.target.id === 'select-page') setSelected(pageRunIds(), e.target.checked);
  });
  const applyFilters = () => {
    const config = { ...readState().config };
    for (const input of thead.querySelectorAll('.col-filter')) {
      if (input.value.trim()) config[input.dataset.filter] = input.value.trim(); else delete config[input.dataset.filter];
    }
    setState({ config, offset: 0 });
  };
  const typed = debounce(applyFilters, 600);
  thead.addEventListener('input', (e) => { if (e.target.classList.contains('col-filter')) typed(); });
  thead.addEventListener('keydown', (e) => { if (e.key === 'Enter' && e.target.classList.contains('col-filter')) applyFilters(); });

  tbody().addEventListener('change', (e) => {
    const box = e.target.closest('.select-run, .select-group');
    if (!box) return;
    setSelected(box.dataset.run ? [Number(box.dataset.run)] : groups.get(box.dataset.group)?.run_ids ?? [], box.checked);
  });
  tbody().addEventListener('click', (e) => {
    const expander = e.target.closest('[data-expand]');
    const tag = e.target.closest('[data-tag]');
    const edit = e.target.closest('[data-edit]');
    if (expander) toggleGroup(expander.dataset.expand);
    else if (edit) labels.open(Number(edit.dataset.edit));
    else if (tag) setState({ tag: [...new Set([...tagsOf(readState()), tag.dataset.tag])].join(','), offset: 0 });
  });
  $('runs-active-filters').addEventListener('click', (e) => {
    const button = e.target.closest('[data-unfilter]');
    if (!button) return;
    const { [button.dataset.unfilter]: _, ...config } = readState().config;
    setState({ config, offset: 0 });
  });
  $('column-picker-list').addEventListener('change', () => {
    const cols = [...$('column-picker-list').querySelectorAll('input:checked')].map((box) => box.dataset.col);
    setState({ cols: cols.join(',') });
  });
  new ResizeObserver(updateScrollCue).observe($('runs-wrap'));
}

export function init() {
  live.init();
  labels.init();
  store.subscribe(onChange);
  bindActions(tbody(), () => load(readState()));
  bulk.init(() => filters(readState()), () => load(readState()));
  bindTable();
  renderColumns(readState());
  loadOptions().then((options) => {
    const select = $('filter-dataset');
    for (const ds of options.datasets || []) {
      const id = typeof ds === 'string' ? ds : ds.id;
      select.add(new Option(id, id));
    }
    select.value = readState().dataset;
    configKeys = options.config_keys || {};
    if (visible) show(readState());
  }).catch(() => {});

  $('filter-dataset').addEventListener('change', (e) => setState({ dataset: e.target.value, offset: 0 }));
  $('filter-status').addEventListener('change', (e) => setState({ status: e.target.value, offset: 0 }));
  const onQuery = debounce((v) => setState({ q: v.trim(), offset: 0 }), 300);
  $('filter-q').addEventListener('input', (e) => onQuery(e.target.value));
  const onTags = debounce((v) => setState({ tag: labels.parseTags(v).join(','), offset: 0 }), 400);
  $('filter-tag').addEventListener('input', (e) => onTags(e.target.value));
  $('group-toggle').addEventListener('change', (e) => setState({ grouped: e.target.checked ? '1' : '', offset: 0 }));
  $('runs-limit').addEventListener('change', (e) => setState({ limit: Number(e.target.value), offset: 0 }));
  $('runs-prev').addEventListener('click', () => {
    const s = readState();
    setState({ offset: Math.max(0, s.offset - s.limit) });
  });
  $('runs-next').addEventListener('click', () => {
    const s = readState();
    setState({ offset: s.offset + s.limit });
  });
  $('compare-button').addEventListener('click', () => setState({ view: 'compare' }, { push: true }));
  $('clear-selection').addEventListener('click', () => setState({ sel: [] }));
  window.addEventListener('zoolab:state', () => renderSelection());
}
