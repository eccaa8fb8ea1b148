// The Runs view: a sortable, filterable, paginated table of runs (sorting, filtering and
// paging happen on the server, so a thousand runs cost one page), updated in place by the
// global event stream, with row actions and a selection for Compare.

import { loadOptions, query } from './api.js';
import { forkLink } from './fork.js';
import { compact, datetime, esc, int, pct, seconds, shortDatetime } from './format.js';
import * as live from './live.js';
import { fitCharts } from './plots.js';
import { readState, setState } from './state.js';
import * as store from './store.js';
import { ACTIVE, actionButtons, bindActions, debounce, progressHtml, statusBadge, toast } from './widgets.js';

// Columns whose first click sorts high to low.
const DESC_FIRST = new Set(['params', 'best_test_acc', 'final_test_acc', 'epochs_done', 'total_seconds',
  'images_per_second', 'created_at', 'id']);

const tbody = () => document.getElementById('runs-tbody');
const rowOf = (id) => tbody().querySelector(`tr[data-run-id="${id}"]`);
let shown = new Set(); // the ids of the page's rows
let loadedKey = null;
let loadSeq = 0;
let total = 0;
let visible = false;
const scheduleReload = debounce(() => load(readState()), 500);

function filters(state) {
  return { dataset: state.dataset, status: state.status, q: state.q };
}

function listParams(state) {
  return { ...filters(state), sort: state.sort, order: state.order, limit: state.limit, offset: state.offset };
}

function notesLine(text, beat) {
  return text ? `<div class="notes${beat ? ' beat' : ''}" title="recorded in the notes">${esc(text)}</div>` : '';
}

function rowHtml(run) {
  const acc = run.best_test_acc;
  const beat = typeof acc === 'number' && typeof run.notes_acc === 'number' && acc >= run.notes_acc;
  const epochs = `${run.epochs_done ?? 0} / ${run.epochs_total ?? run.config?.epochs ?? '?'}`;
  return `
    <td class="col-select"><input type="checkbox" class="select-run" data-run="${run.id}" data-testid="select-${run.id}"
      aria-label="Select run ${run.id}"></td>
    <td class="col-name"><a class="run-link" href="#view=detail&run=${run.id}" data-go-view="detail" data-go-run="${run.id}"
      data-testid="run-link-${run.id}"><span class="run-id">#${run.id}</span> ${esc(run.name)}</a></td>
    <td class="col-model"><code>${esc(run.model)}</code></td>
    <td>${esc(run.dataset)}</td>
    <td class="col-status"><span class="slot-status">${statusBadge(run)}</span><span class="slot-progress">${progressHtml(run)}</span></td>
    <td class="num" title="${int(run.params)}">${compact(run.params)}</td>
    <td class="num"><span data-testid="best-${run.id}">${pct(acc)}</span>${notesLine(run.notes_acc != null ? `notes ${pct(run.notes_acc)}` : '', beat)}</td>
    <td class="num">${pct(run.final_test_acc)}</td>
    <td class="num">${epochs}</td>
    <td class="num">${run.status === 'queued' && !run.total_seconds ? '—' : seconds(run.total_seconds)}${notesLine(run.notes_seconds != null ? `notes ${seconds(run.notes_seconds)}` : '')}</td>
    <td class="num">${int(run.images_per_second)}</td>
    <td class="col-created" title="${esc(datetime(run.created_at))}">${shortDatetime(run.created_at)}</td>
    <td class="col-actions">${actionButtons(run)}${forkLink(run)}</td>`;
}

function renderRow(run, tr = null) {
  const row = tr || document.createElement('tr');
  row.dataset.runId = run.id;
  row.setAttribute('data-testid', `run-row-${run.id}`);
  const html = rowHtml(run);
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
  shown = new Set(items.map((run) => run.id));
  items.forEach((run, i) => {
    const tr = renderRow(run, existing.get(run.id));
    existing.delete(run.id);
    if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] || null);
  });
  for (const tr of existing.values()) tr.remove();
  document.getElementById('runs-empty').hidden = items.length > 0;
  renderSelection();
}

function renderHeader(state) {
  for (const th of document.querySelectorAll('#runs-table th[data-sort]')) {
    const active = th.dataset.sort === state.sort;
    th.setAttribute('aria-sort', active ? (state.order === 'asc' ? 'ascending' : 'descending') : 'none');
    th.classList.toggle('sorted', active);
  }
  document.getElementById('filter-dataset').value = state.dataset;
  document.getElementById('filter-status').value = state.status;
  const q = document.getElementById('filter-q');
  if (document.activeElement !== q) q.value = state.q;
  document.getElementById('runs-limit').value = String(state.limit);
  document.getElementById('runs-export').href = `/runs.csv${query(filters(state))}`;
}

function renderPager(state) {
  const from = total ? state.offset + 1 : 0;
  const to = Math.min(state.offset + shown.size, total);
  document.getElementById('runs-pageinfo').textContent = `${from}–${to} of ${int(total)} runs`;
  document.getElementById('runs-prev').disabled = state.offset <= 0;
  document.getElementById('runs-next').disabled = state.offset + state.limit >= total;
}

function renderSelection() {
  const sel = readState().sel;
  const button = document.getElementById('compare-button');
  button.disabled = sel.length === 0;
  button.textContent = sel.length ? `Compare ${sel.length} selected` : 'Compare';
  document.getElementById('clear-selection').hidden = sel.length === 0;
  const boxes = [...tbody().querySelectorAll('.select-run')];
  for (const box of boxes) {
    box.checked = sel.includes(Number(box.dataset.run));
    box.closest('tr').classList.toggle('selected', box.checked);
  }
  const all = document.getElementById('select-page');
  all.checked = boxes.length > 0 && boxes.every((b) => b.checked);
  all.indeterminate = !all.checked && boxes.some((b) => b.checked);
}

async function load(state) {
  const seq = ++loadSeq;
  loadedKey = JSON.stringify(listParams(state));
  renderHeader(state);
  try {
    const page = await store.fetchPage(listParams(state));
    if (seq !== loadSeq) return;
    total = page.total;
    if (page.items.length === 0 && state.offset > 0 && total > 0) {
      setState({ offset: Math.max(0, Math.floor((total - 1) / state.limit) * state.limit) });
      return;
    }
    renderTable(page.items);
    renderPager(state);
  } catch (e) {
    if (seq === loadSeq) toast(`Could not load runs: ${e.message}`, 'error');
  }
}

function onChange({ type, id, run }) {
  if (type === 'deleted') {
    rowOf(id)?.remove();
    shown.delete(id);
    const sel = readState().sel;
    if (sel.includes(id)) setState({ sel: sel.filter((x) => x !== id) });
  } else if (type === 'launched') {
    addLaunched(run);
  } else if (type === 'progress') {
    if (shown.has(id)) renderProgress(run);
  } else if (shown.has(id)) {
    renderRow(run, rowOf(id));
  }
  // A new run, or a claim that moves every queued run up one place: fetch the page again.
  if (type === 'status' && (!shown.has(id) || run.status === 'running'
      || [...shown].some((x) => store.get(x)?.status === 'queued'))) {
    if (visible) scheduleReload(); else loadedKey = null;
  }
}

function belongsOnFirstPage(run, state) {
  const q = state.q.toLowerCase();
  return state.sort === 'id' && state.order === 'desc' && state.offset === 0
    && (!state.dataset || state.dataset === run.dataset) && (!state.status || state.status === run.status)
    && (!q || `${run.name} ${run.model}`.toLowerCase().includes(q));
}

// A run this page launched: in the table at once, before the page reloads.
function addLaunched(run) {
  if (!shown.has(run.id) && belongsOnFirstPage(run, readState())) {
    shown.add(run.id);
    tbody().prepend(renderRow(run));
    total += 1;
    document.getElementById('runs-empty').hidden = true;
  }
  loadedKey = null;
}

export function show(state) {
  visible = true;
  if (JSON.stringify(listParams(state)) !== loadedKey) load(state);
  else { renderHeader(state); renderSelection(); }
  live.refresh().catch(() => {});
  fitCharts(document.getElementById('live-panel'));
}

export function hide() {
  visible = false;
}

export function init() {
  live.init();
  store.subscribe(onChange);
  bindActions(tbody(), () => load(readState()));
  loadOptions().then((options) => {
    const select = document.getElementById('filter-dataset');
    for (const ds of options.datasets || []) {
      const id = typeof ds === 'string' ? ds : ds.id;
      select.add(new Option(id, id));
    }
    select.value = readState().dataset;
  }).catch(() => {});

  document.querySelector('#runs-table thead').addEventListener('click', (e) => {
    const th = e.target.closest('th[data-sort]');
    if (!th) return;
    const state = readState();
    const key = th.dataset.sort;
    const order = key === state.sort ? (state.order === 'asc' ? 'desc' : 'asc') : (DESC_FIRST.has(key) ? 'desc' : 'asc');
    setState({ sort: key, order, offset: 0 });
  });
  document.getElementById('filter-dataset').addEventListener('change', (e) => setState({ dataset: e.target.value, offset: 0 }));
  document.getElementById('filter-status').addEventListener('change', (e) => setState({ status: e.target.value, offset: 0 }));
  const onQuery = debounce((v) => setState({ q: v.trim(), offset: 0 }), 300);
  document.getElementById('filter-q').addEventListener('input', (e) => onQuery(e.target.value));
  document.getElementById('runs-limit').addEventListener('change', (e) => setState({ limit: Number(e.target.value), offset: 0 }));
  document.getElementById('runs-prev').addEventListener('click', () => {
    const s = readState();
    setState({ offset: Math.max(0, s.offset - s.limit) });
  });
  document.getElementById('runs-next').addEventListener('click', () => {
    const s = readState();
    setState({ offset: s.offset + s.limit });
  });
  document.getElementById('compare-button').addEventListener('click', () => setState({ view: 'compare' }, { push: true }));
  document.getElementById('clear-selection').addEventListener('click', () => setState({ sel: [] }));
  document.getElementById('select-page').addEventListener('change', (e) => {
    const ids = [...shown];
    const sel = readState().sel;
    setState({ sel: e.target.checked ? [...new Set([...sel, ...ids])] : sel.filter((id) => !ids.includes(id)) });
  });

  tbody().addEventListener('change', (e) => {
    const box = e.target.closest('.select-run');
    if (!box) return;
    const id = Number(box.dataset.run);
    const sel = readState().sel.filter((x) => x !== id);
    if (box.checked) sel.push(id);
    setState({ sel });
  });
  window.addEventListener('zoolab:state', () => renderSelection());
}
