// The Compare view: the selected runs overlaid (test accuracy and loss against epoch or wall
// time), best accuracy against parameter count with the Pareto front (the notes' question:
// "can it be done with fewer parameters?"), against training time, a bar per run, and the
// hyper-parameters that differ.

import { ApiError, loadZoo } from './api.js';
import { forkLink } from './fork.js';
import { esc, int, pct, seconds, value } from './format.js';
import { axis, draw, layout, PALETTE } from './plots.js';
import { readState, setState } from './state.js';
import * as store from './store.js';
import { debounce, statusBadge, toast } from './widgets.js';

const $ = (id) => document.getElementById(id);
let visible = false;
let loadSeq = 0;
let drawn = null; // {ids, contextIds, zoo, x}: what the charts show
let shown = []; // [{run, metrics, color}] of the drawing under way
const scheduleRender = debounce(() => { if (visible && drawn) render(); }, 700);

const label = (run) => `#${run.id} ${run.name || run.model}`;

// A selected run and its metrics into the store: its id, or null when it no longer exists.
const fetchRun = (id) => Promise.all([store.fetchRun(id), store.loadMetrics(id)]).then(() => id, (e) => {
  if (e instanceof ApiError && e.status === 404) return null;
  throw e;
});

// Finished runs of the same datasets, for context in the scatter plots and the Pareto front.
async function fetchContext(datasets) {
  const pages = await Promise.all(datasets.map((dataset) => store.fetchPage({
    dataset, status: 'finished', sort: 'best_test_acc', order: 'desc', limit: 1000,
  })));
  return pages.flatMap((p) => p.items.map((run) => run.id));
}

// Runs no other run beats with as few or fewer parameters: ascending params, rising accuracy.
export function paretoFront(points) {
  const sorted = [...points].filter((p) => p.params > 0 && typeof p.acc === 'number')
    .sort((a, b) => a.params - b.params || b.acc - a.acc);
  const front = [];
  for (const p of sorted) if (!front.length || p.acc > front[front.length - 1].acc) front.push(p);
  return front;
}

function curveCharts(xMode) {
  const xOf = (e) => (xMode === 'wall' ? e.wall_seconds : e.epoch);
  const xTitle = xMode === 'wall' ? 'seconds since the run started' : 'epoch';
  for (const [el, key, yaxis] of [['compare-acc', 'test_acc', { tickformat: '.2~%', title: { text: 'test accuracy' } }],
    ['compare-loss', 'test_loss', { title: { text: 'test loss' } }]]) {
    const data = shown.map(({ run, metrics: { epochs }, color }) => ({
      name: label(run), x: epochs.map(xOf), y: epochs.map((e) => e[key]), mode: 'lines+markers',
      line: { color, width: 2 }, marker: { size: 6, color },
      hovertemplate: `%{y:${key === 'test_acc' ? '.2%' : '.4f'}}<extra>${esc(label(run))}</extra>`,
    }));
    const epochs = Math.max(0, ...shown.map(({ metrics }) => metrics.epochs.length));
    const xaxis = xMode === 'wall' ? { rangemode: 'tozero' } : { dtick: epochs <= 12 ? 1 : undefined };
    draw($(el), data, layout({
      height: 340, uirevision: `${el}-${xMode}`,
      xaxis: axis({ title: { text: xTitle }, ...xaxis }), yaxis: axis(yaxis),
    }));
  }
}

function scatterCharts(context, zoo) {
  const selectedIds = new Set(shown.map((s) => s.run.id));
  const others = context.filter((r) => !selectedIds.has(r.id) && typeof r.best_test_acc === 'number');
  const datasets = [...new Set(shown.map((s) => s.run.dataset))];
  const notes = zoo.filter((p) => datasets.includes(p.dataset) && typeof p.notes_acc === 'number');
  const perRun = (xKey) => shown.filter(({ run }) => typeof run.best_test_acc === 'number').map(({ run, color }) => ({
    name: label(run), x: [run[xKey]], y: [run.best_test_acc], mode: 'markers+text', text: [`#${run.id}`],
    textposition: 'top center', textfont: { size: 10, color }, showlegend: false,
    marker: { size: 11, color, line: { color: '#fff', width: 1 } },
    hovertemplate: `${esc(label(run))}<br>%{x:,} ${xKey === 'params' ? 'params' : 's'}<br>%{y:.2%}<extra></extra>`,
  }));

  const fronts = datasets.map((dataset, i) => {
    const points = [...others, ...shown.map((s) => s.run)].filter((r) => r.dataset === dataset)
      .map((r) => ({ params: r.params, acc: r.best_test_acc, id: r.id, name: r.name }));
    const front = paretoFront(points);
    return {
      name: `Pareto front${datasets.length > 1 ? ` (${dataset})` : ''}`, x: front.map((p) => p.params),
      y: front.map((p) => p.acc), mode: 'lines+markers', line: { shape: 'hv', dash: 'dot', color: ['#111827', '#6b7280'][i % 2], width: 1.5 },
      marker: { symbol: 'circle-open', size: 17, color: '#111827', line: { width: 1.5 } },
      text: front.map((p) => `#${p.id} ${p.name}`), hovertemplate: '%{text}<br>%{x:,} params · %{y:.2%}<extra>Pareto front</extra>',
    };
  });
  const otherTrace = (xKey) => ({
    name: 'other finished runs', x: others.map((r) => r[xKey]), y: others.map((r) => r.best_test_acc),
    mode: 'markers', marker: { size: 7, color: 'rgba(107,114,128,0.35)' },
    text: others.map((r) => `#${r.id} ${r.name}`), hovertemplate: '%{text}<br>%{x:,}<br>%{y:.2%}<extra></extra>',
  });
  const notesTrace = (xKey) => ({
    name: xKey === 'params' ? "the notes' results" : "the notes' results (their machine)",
    x: notes.map((p) => (xKey === 'params' ? p.params : p.notes_seconds)), y: notes.map((p) => p.notes_acc),
    mode: 'markers', marker: { symbol: 'diamond-open', size: 9, color: '#b45309', line: { width: 1.5 } },
    text: notes.map((p) => p.id), hovertemplate: '%{text}<br>%{x:,}<br>%{y:.2%}<extra>notes</extra>',
  });

  draw($('compare-params'), [otherTrace('params'), notesTrace('params'), ...fronts, ...perRun('params')], layout({
    height: 340, uirevision: 'compare-params',
    xaxis: axis({ type: 'log', title: { text: 'parameters (log scale)' } }),
    yaxis: axis({ tickformat: '.1~%', title: { text: 'best test accuracy' } }),
  }));
  const timedNotes = notesTrace('time');
  const keep = timedNotes.x.map((x) => typeof x === 'number');
  for (const k of ['x', 'y', 'text']) timedNotes[k] = timedNotes[k].filter((_, i) => keep[i]);
  draw($('compare-time'), [otherTrace('total_seconds'), timedNotes, ...perRun('total_seconds')], layout({
    height: 340, uirevision: 'compare-time',
    xaxis: axis({ type: 'log', title: { text: 'training time, seconds (log scale)' } }),
    yaxis: axis({ tickformat: '.1~%', title: { text: 'best test accuracy' } }),
  }));
}

function bestChart(zoo) {
  const notesOf = new Map(zoo.map((p) => [p.id, p.notes_acc]));
  const labels = shown.map(({ run }) => label(run));
  draw($('compare-best'), [
    { type: 'bar', orientation: 'h', name: 'best test accuracy', y: labels, x: shown.map(({ run }) => run.best_test_acc),
      marker: { color: shown.map((s) => s.color) }, text: shown.map(({ run }) => pct(run.best_test_acc)),
      textposition: 'inside', insidetextanchor: 'end', textfont: { color: '#fff' },
      hovertemplate: '%{y}<br>%{x:.2%}<extra></extra>' },
    { type: 'scatter', name: "the notes' result for the preset", y: labels,
      x: shown.map(({ run }) => run.notes_acc ?? notesOf.get(run.model) ?? null), mode: 'markers',
      marker: { symbol: 'line-ns-open', size: 26, color: '#b45309', line: { width: 3 } },
      hovertemplate: 'notes: %{x:.2%}<extra></extra>' },
  ], layout({
    height: 90 + 44 * shown.length, uirevision: 'compare-best', bargap: 0.35,
    margin: { l: 16, r: 16, t: 8, b: 40 },
    yaxis: axis({ autorange: 'reversed', automargin: true }),
    xaxis: axis({ tickformat: '.0%', title: { text: 'best test accuracy' }, range: [0, 1] }),
    legend: { orientation: 'h', y: 1.02, yanchor: 'bottom', x: 1, xanchor: 'right' },
  }));
}

function diffTable() {
  const configs = shown.map(({ run }) => ({ model: run.model, dataset: run.dataset, ...(run.config || {}) }));
  const keys = [...new Set(configs.flatMap((c) => Object.keys(c)))].filter((k) => k !== 'name');
  const differ = keys.filter((k) => new Set(configs.map((c) => JSON.stringify(c[k] ?? null))).size > 1).sort();
  const head = `<thead><tr><th>hyper-parameter</th>${shown.map(({ run, color }) =>
    `<th><span class="swatch" style="background:${color}"></span>${esc(label(run))}</th>`).join('')}</tr></thead>`;
  const body = differ.length
    ? differ.map((k) => `<tr data-key="${esc(k)}"><th><code>${esc(k)}</code></th>${configs.map((c) =>
      `<td>${esc(value(c[k]))}</td>`).join('')}</tr>`).join('')
    : `<tr><td colspan="${shown.length + 1}" class="muted">${shown.length > 1
      ? 'All hyper-parameters are the same.' : 'Select two or more runs to see what differs.'}</td></tr>`;
  $('compare-diff').innerHTML = `${head}<tbody>${body}</tbody>`;
}

function legend() {
  $('compare-legend').innerHTML = shown.map(({ run, color }) => `
    <li data-testid="compare-run-${run.id}"><span class="swatch" style="background:${color}"></span>
      <a href="#view=detail&run=${run.id}" data-go-view="detail" data-go-run="${run.id}">${esc(label(run))}</a>
      <code>${esc(run.model)}</code> ${statusBadge(run)}
      <span class="muted">${int(run.params)} params · best ${pct(run.best_test_acc)} · ${seconds(run.total_seconds)}</span>
      ${forkLink(run)}
      <button type="button" class="icon-btn" data-remove="${run.id}" title="Remove from comparison" aria-label="Remove #${run.id}">×</button>
    </li>`).join('');
}

async function load(state) {
  const seq = ++loadSeq;
  const ids = state.sel;
  drawn = null;
  $('compare-empty').hidden = ids.length > 0;
  $('compare-body').hidden = ids.length === 0;
  for (const input of document.querySelectorAll('input[name="compare-x"]')) input.checked = input.value === state.x;
  if (!ids.length) return;
  let fetched;
  let zoo = [];
  let contextIds = [];
  try {
    [fetched, zoo] = await Promise.all([Promise.all(ids.map(fetchRun)), loadZoo().catch(() => [])]);
    contextIds = await fetchContext([...new Set(fetched.filter(Boolean).map((id) => store.get(id).dataset))]);
  } catch (e) {
    if (seq === loadSeq) toast(`Could not load the comparison: ${e.message}`, 'error');
    return;
  }
  if (seq !== loadSeq) return;
  const missing = ids.filter((_, i) => !fetched[i]);
  if (missing.length) {
    toast(`Run${missing.length > 1 ? 's' : ''} ${missing.map((m) => `#${m}`).join(', ')} no longer exist.`, 'error');
    setState({ sel: ids.filter((id) => !missing.includes(id)) });
    return;
  }
  drawn = { ids, contextIds, zoo, x: state.x === 'wall' ? 'wall' : 'epoch' };
  render();
}

// Draws the comparison from the store, again whenever a selected run changes.
function render() {
  const { ids, contextIds, zoo, x } = drawn;
  shown = ids.map((id, i) => ({ run: store.get(id), metrics: store.metrics(id), color: PALETTE[i % PALETTE.length] }));
  if (shown.some((s) => !s.run || !s.metrics)) return; // deleted: the selection follows
  legend();
  curveCharts(x);
  scatterCharts(contextIds.map(store.get).filter(Boolean), zoo);
  bestChart(zoo);
  diffTable();
}

function onChange({ type, id }) {
  if (type !== 'progress' && drawn?.ids.includes(id)) scheduleRender();
}

let lastKey = null;

export function show(state) {
  visible = true;
  const key = JSON.stringify([state.sel, state.x]);
  if (key !== lastKey) {
    lastKey = key;
    load(state);
  }
}

export function hide() {
  visible = false;
  lastKey = null;
}

export function init() {
  store.subscribe(onChange);
  for (const input of document.querySelectorAll('input[name="compare-x"]')) {
    input.addEventListener('change', () => setState({ x: input.value }));
  }
  $('compare-legend').addEventListener('click', (e) => {
    const b = e.target.closest('[data-remove]');
    if (b) setState({ sel: readState().sel.filter((id) => id !== Number(b.dataset.remove)) });
  });
}
