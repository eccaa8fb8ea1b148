// The Sweeps view: launch a search over a space of runs (a base preset, the keys to vary with
// their ranges or choices, a sampler, a budget, a pruner), list the sweeps, and one sweep's page:
// progress, the best run so far, the optimisation history, the parameters' importances and a
// parallel-coordinates chart, drawn with Plotly from GET /sweeps/{id} and /importances.

import { api, ApiError, loadZoo, post } from './api.js';
import { esc, int, pct, seconds, shortDatetime } from './format.js';
import { axis, draw, layout, PALETTE } from './plots.js';
import { setState } from './state.js';
import * as store from './store.js';
import { debounce, statusBadge, toast } from './widgets.js';

const $ = (id) => document.getElementById(id);
const POLL_MS = 3000; // a sweep closes in the server's loop, between run events: poll while it runs
const COUNTS = ['finished', 'running', 'queued', 'pruned', 'failed', 'cancelled'];

let visible = false;
let shownId = null;   // the sweep whose page is shown; null: the list and the form
let trialRuns = new Set();
let pollTimer = null;
let loadSeq = 0;
let space = null;     // GET /sweeps/space of the form's preset

// --- the form ---------------------------------------------------------------------------------

function keyOptions() {
  const widths = (space?.widths || []).map((w) => `<option value="${esc(w.key)}">${esc(w.key)} — width of ${esc(w.layer)}</option>`);
  const keys = (space?.keys || []).map((k) => `<option value="${esc(k.key)}">${esc(k.key)}</option>`);
  return `<optgroup label="Layer widths">${widths.join('')}</optgroup><optgroup label="Config">${keys.join('')}</optgroup>`;
}

function describeKey(key) {
  const w = space?.widths.find((x) => x.key === key);
  if (w) return { kind: 'int', value: w.width, low: 1, high: w.high, choices: null };
  return space?.keys.find((k) => k.key === key) || null;
}

// A row's defaults: around the preset's value (a log range of a decade each side), or its choices.
function fillRow(row) {
  const info = describeKey(row.querySelector('.param-key').value);
  if (!info) return;
  const choice = info.kind === 'choice';
  row.querySelector('.param-mode').value = choice ? 'choices' : 'range';
  const v = typeof info.value === 'number' ? info.value : null;
  const low = v ? (info.kind === 'int' ? Math.max(1, Math.round(v / 4)) : +(v / 10).toPrecision(3)) : '';
  const high = v ? (info.kind === 'int' ? Math.round(v * 4) : +(v * 10).toPrecision(3)) : '';
  row.querySelector('.param-low').value = low;
  row.querySelector('.param-high').value = info.high != null && high > info.high ? info.high : high;
  row.querySelector('.param-log').checked = Boolean(v && v > 0);
  row.querySelector('.param-choices').value = choice ? info.choices.join(', ') : (v != null ? String(v) : '');
  syncRow(row);
}

function syncRow(row) {
  const range = row.querySelector('.param-mode').value === 'range';
  for (const el of row.querySelectorAll('.when-range')) el.hidden = !range;
  for (const el of row.querySelectorAll('.when-choices')) el.hidden = range;
  for (const el of row.querySelectorAll('.when-grid')) el.hidden = !range || $('sweep-sampler').value !== 'grid';
}

function addRow(key) {
  const row = document.createElement('div');
  row.className = 'param-row';
  const n = $('sweep-params').children.length;
  row.setAttribute('data-testid', `param-${n}`);
  row.innerHTML = `
    <select class="param-key" aria-label="parameter" data-testid="param-key-${n}">${keyOptions()}</select>
    <select class="param-mode" aria-label="how it varies" data-testid="param-mode-${n}">
      <option value="range">range</option><option value="choices">choices</option></select>
    <input class="param-low when-range" type="text" inputmode="decimal" placeholder="low" aria-label="low" data-testid="param-low-${n}">
    <input class="param-high when-range" type="text" inputmode="decimal" placeholder="high" aria-label="high" data-testid="param-high-${n}">
    <label class="when-range param-check"><input class="param-log" type="checkbox" data-testid="param-log-${n}"> log</label>
    <input class="param-points when-grid" type="text" inputmode="numeric" placeholder="points" value="3" aria-label="points" data-testid="param-points-${n}">
    <input class="param-choices when-choices" type="text" placeholder="a, b, c" aria-label="choices" data-testid="param-choices-${n}">
    <button type="button" class="btn btn-small btn-danger param-remove" aria-label="remove">✕</button>
    <div class="field-error param-error" hidden></div>`;
  $('sweep-params').append(row);
  const select = row.querySelector('.param-key');
  if (key && [...select.options].some((o) => o.value === key)) select.value = key;
  fillRow(row);
  return row;
}

const number = (raw) => (/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(raw) ? Number(raw) : raw);

function rowParam(row) {
  const key = row.querySelector('.param-key').value;
  if (row.querySelector('.param-mode').value === 'choices') {
    const choices = row.querySelector('.param-choices').value.split(',').map((s) => s.trim()).filter(Boolean)
      .map((s) => (s === 'none' ? null : number(s)));
    return [key, { choices }];
  }
  const param = { low: number(row.querySelector('.param-low').value.trim()),
    high: number(row.querySelector('.param-high').value.trim()) };
  if (row.querySelector('.param-log').checked) param.log = true;
  if ($('sweep-sampler').value === 'grid') param.points = number(row.querySelector('.param-points').value.trim());
  return [key, param];
}

function formBody() {
  const base = { model: $('sweep-preset').value };
  for (const key of ['epochs', 'train_subset']) {
    const raw = $(`sweep-${key}`).value.trim();
    if (raw) base[key] = number(raw);
  }
  const body = { base, space: Object.fromEntries([...$('sweep-params').children].map(rowParam)),
    sampler: $('sweep-sampler').value, pruner: $('sweep-pruner').value };
  const budget = $('sweep-budget').value.trim();
  if (budget) body.budget = number(budget);
  const name = $('sweep-name').value.trim();
  if (name) body.name = name;
  return body;
}

function showErrors(error) {
  const box = $('sweep-error');
  const items = error instanceof ApiError && Array.isArray(error.detail) ? error.detail : [{ msg: error.message }];
  for (const item of items) {
    const loc = item.loc || [];
    const key = loc[1] === 'space' ? loc[2] : null;
    const row = key && [...$('sweep-params').children].find((r) => r.querySelector('.param-key').value === key);
    if (row) {
      const slot = row.querySelector('.param-error');
      slot.hidden = false;
      slot.textContent = item.msg;
    }
  }
  box.innerHTML = `<strong>The server refused this sweep:</strong><ul>${items.map((d) => `<li>${
    Array.isArray(d.loc) ? `<code>${esc(d.loc.filter((p) => p !== 'body').join('.'))}</code>: ` : ''}${esc(d.msg)}</li>`).join('')}</ul>`;
  box.hidden = false;
}

function clearErrors() {
  $('sweep-error').hidden = true;
  for (const el of document.querySelectorAll('#sweep-params .param-error')) el.hidden = true;
}

async function submit(e) {
  e.preventDefault();
  clearErrors();
  const button = $('sweep-submit');
  button.disabled = true;
  try {
    const sweep = await post('/sweeps', formBody());
    toast(`Sweep #${sweep.id} started: ${sweep.progress.trials} of ${sweep.budget} trials queued.`);
    setState({ view: 'sweeps', sweep: sweep.id }, { push: true });
  } catch (err) {
    showErrors(err);
  } finally {
    button.disabled = false;
  }
}

async function loadSpace() {
  const model = $('sweep-preset').value;
  if (!model) return;
  space = await api(`/sweeps/space?model=${encodeURIComponent(model)}`);
  const wanted = [...$('sweep-params').children].map((r) => r.querySelector('.param-key').value);
  $('sweep-params').innerHTML = '';
  const first = wanted.length ? wanted : ['lr', space.widths[0]?.key].filter(Boolean);
  for (const key of first) addRow(key);
  const epochs = space.keys.find((k) => k.key === 'epochs');
  $('sweep-epochs').placeholder = `${epochs?.value ?? ''} (preset)`;
}

async function initForm() {
  const zoo = await loadZoo();
  const byDataset = {};
  for (const p of zoo) (byDataset[p.dataset] ||= []).push(p);
  $('sweep-preset').innerHTML = Object.entries(byDataset).map(([d, list]) => `<optgroup label="${esc(d)}">${
    list.map((p) => `<option value="${esc(p.id)}">${esc(p.id)} · ${int(p.params)} params</option>`).join('')}</optgroup>`).join('');
  $('sweep-preset').value = zoo.some((p) => p.id === 'mnist-2fc-relu-55k') ? 'mnist-2fc-relu-55k' : zoo[0]?.id;
  await loadSpace();
}

// --- the list ----------------------------------------------------------------------------------

function progressBar(p) {
  const total = Math.max(p.budget, 1);
  const parts = COUNTS.filter((k) => p[k]).map((k) => `<span class="seg seg-${k}" style="width:${(p[k] / total * 100).toFixed(1)}%"
    title="${p[k]} ${k}"></span>`).join('');
  return `<div class="sweep-bar" role="img" aria-label="${COUNTS.map((k) => `${p[k]} ${k}`).join(', ')}">${parts}</div>`;
}

function countsText(p) {
  return `${p.trials} of ${p.budget} trials · ${COUNTS.map((k) => `<span class="count-${k}" data-testid="sweep-count-${k}">${p[k]} ${k}</span>`).join(' · ')}`;
}

function bestLink(best, testid) {
  if (!best) return '—';
  return `<a href="#view=detail&run=${best.id}" data-go-view="detail" data-go-run="${best.id}" data-testid="${testid}">`
    + `<span class="run-id">#${best.id}</span> ${pct(best.best_test_acc)}</a>`;
}

async function loadList() {
  const seq = ++loadSeq;
  const sweeps = await api('/sweeps');
  if (seq !== loadSeq) return;
  $('sweeps-empty').hidden = sweeps.length > 0;
  $('sweeps-tbody').innerHTML = sweeps.map((s) => `<tr data-testid="sweep-row-${s.id}">
    <td><a href="#view=sweeps&sweep=${s.id}" data-sweep="${s.id}" data-testid="sweep-link-${s.id}"><span class="run-id">#${s.id}</span> ${esc(s.name)}</a></td>
    <td><span class="badge sweep-status-${esc(s.status)}">${esc(s.status)}</span></td>
    <td>${esc(s.sampler)}${s.pruner !== 'none' ? ` · ${esc(s.pruner)}` : ''}</td>
    <td class="sweep-progress-cell">${progressBar(s.progress)}<div class="progress-text">${s.progress.trials} / ${s.budget}</div></td>
    <td class="num">${bestLink(s.best, `sweep-best-${s.id}`)}</td>
    <td>${shortDatetime(s.created_at)}</td></tr>`).join('');
}

// --- one sweep's page --------------------------------------------------------------------------

function historyChart(trials) {
  const done = trials.filter((t) => typeof t.value === 'number').sort((a, b) => a.number - b.number);
  const complete = done.filter((t) => t.state === 'complete');
  const pruned = done.filter((t) => t.state === 'pruned');
  let best = -Infinity;
  const bestSoFar = complete.map((t) => { best = Math.max(best, t.value); return best; });
  const text = (t) => `trial ${t.number} · run #${t.run_id}<br>${Object.entries(t.params).map(([k, v]) => `${k} ${typeof v === 'number' ? +v.toPrecision(3) : v}`).join('<br>')}`;
  draw($('sweep-history'), [
    { name: 'finished trial', x: complete.map((t) => t.number), y: complete.map((t) => t.value), mode: 'markers',
      marker: { size: 9, color: PALETTE[0] }, text: complete.map(text), hovertemplate: '%{text}<br>%{y:.2%}<extra></extra>' },
    { name: 'pruned (last epoch reported)', x: pruned.map((t) => t.number), y: pruned.map((t) => t.value), mode: 'markers',
      marker: { size: 9, symbol: 'x', color: PALETTE[3] }, text: pruned.map(text), hovertemplate: '%{text}<br>%{y:.2%}<extra>pruned</extra>' },
    { name: 'best so far', x: complete.map((t) => t.number), y: bestSoFar, mode: 'lines', line: { shape: 'hv', color: '#111827', width: 1.5 },
      hoverinfo: 'skip' },
  ], layout({ height: 320, uirevision: 'sweep-history', xaxis: axis({ title: { text: 'trial' }, dtick: done.length <= 20 ? 1 : undefined }),
    yaxis: axis({ tickformat: '.1~%', title: { text: 'best test accuracy' } }) }));
}

function importancesChart(result) {
  const entries = Object.entries(result.importances || {}).reverse(); // most important on top
  $('sweep-importances-note').textContent = result.note
    ? `No importances yet: ${result.note}.` : `Optuna's ${result.evaluator} evaluator over ${result.trials} finished trials.`;
  draw($('sweep-importances'), [{ type: 'bar', orientation: 'h', x: entries.map(([, v]) => v), y: entries.map(([k]) => k),
    marker: { color: PALETTE[2] }, hovertemplate: '%{y}: %{x:.2f}<extra></extra>' }],
  layout({ height: 320, uirevision: 'sweep-importances', margin: { l: 90, r: 16, t: 12, b: 44 },
    xaxis: axis({ range: [0, 1], title: { text: 'importance (sums to 1)' } }), yaxis: axis({}) }));
}

// One axis per parameter (a log range on a log10 axis, choices as evenly spaced ticks), then the
// objective; one line per trial with a result, coloured by it.
function parallelChart(sweep, trials) {
  const done = trials.filter((t) => typeof t.value === 'number');
  const dims = sweep.space.map((d) => {
    const values = done.map((t) => t.params[d.name]);
    if (d.kind === 'choice') {
      const choices = d.choices.map((c) => (c === null ? 'none' : String(c)));
      return { label: d.name, values: values.map((v) => choices.indexOf(v === null ? 'none' : String(v))),
        tickvals: choices.map((_, i) => i), ticktext: choices, range: [0, Math.max(choices.length - 1, 1)] };
    }
    if (d.log) {
      const ticks = [];
      for (let e = Math.floor(Math.log10(d.low)); e <= Math.ceil(Math.log10(d.high)); e += 1) ticks.push(e);
      return { label: `${d.name} (log)`, values: values.map(Math.log10), range: [Math.log10(d.low), Math.log10(d.high)],
        tickvals: ticks, ticktext: ticks.map((e) => `${10 ** e}`) };
    }
    return { label: d.name, values, range: [d.low, d.high] };
  });
  dims.push({ label: 'best test accuracy', values: done.map((t) => t.value), tickformat: '.1%' });
  draw($('sweep-parallel'), [{ type: 'parcoords', dimensions: dims,
    line: { color: done.map((t) => t.value), colorscale: 'Viridis', showscale: true,
      colorbar: { title: { text: 'acc' }, tickformat: '.0%' } } }],
  layout({ height: 360, uirevision: 'sweep-parallel', margin: { l: 70, r: 40, t: 40, b: 24 } }));
}

function paramText(params) {
  return Object.entries(params).map(([k, v]) => `<code>${esc(k)}</code> ${esc(typeof v === 'number' ? +v.toPrecision(4) : v)}`).join(' · ');
}

function renderTrials(trials) {
  $('sweep-trials-tbody').innerHTML = [...trials].sort((a, b) => a.number - b.number).map((t) => {
    const run = t.run_id ? { id: t.run_id, status: t.status, error: t.error } : null;
    return `<tr data-testid="trial-${t.number}">
      <td class="num">${t.number}</td>
      <td>${run ? `<a href="#view=detail&run=${run.id}" data-go-view="detail" data-go-run="${run.id}">#${run.id}</a>` : '—'}</td>
      <td>${run ? statusBadge(run) : esc(t.state)}</td>
      <td>${paramText(t.params)}</td>
      <td class="num">${pct(t.best_test_acc)}</td>
      <td class="num">${t.epochs_done ?? '—'} / ${t.epochs_total ?? '—'}</td>
      <td class="num">${int(t.run_params)}</td>
      <td class="num">${seconds(t.total_seconds)}</td></tr>`;
  }).join('');
}

function renderSweep(sweep, importances) {
  $('sweep-title').innerHTML = `<span class="run-id">#${sweep.id}</span> ${esc(sweep.name)}
    <span class="badge sweep-status-${esc(sweep.status)}" data-testid="sweep-status" data-status="${esc(sweep.status)}">${esc(sweep.status)}</span>`;
  const base = sweep.base || {};
  $('sweep-subtitle').innerHTML = `${esc(sweep.sampler)} sampler · pruner ${esc(sweep.pruner)} · from <code>${esc(sweep.model)}</code>`
    + ` (${esc(base.epochs)} epochs${base.train_subset ? `, ${int(base.train_subset)} training images` : ''})`
    + `${sweep.base_run_id ? ` · derived from <a href="#view=detail&run=${sweep.base_run_id}">#${sweep.base_run_id}</a>` : ''}`;
  $('sweep-cancel').hidden = sweep.status !== 'running';
  $('sweep-progress').innerHTML = `${progressBar(sweep.progress)}<p class="sweep-counts">${countsText(sweep.progress)}</p>`
    + (sweep.error ? `<p class="form-error">${esc(sweep.error)}</p>` : '');
  const best = sweep.best;
  $('sweep-best').innerHTML = best ? `${bestLink(best, 'sweep-best-link')} <span class="muted">${esc(best.name)}</span>
    <div class="sweep-best-params">${int(best.params)} parameters</div>` : '<span class="muted">no finished trial yet</span>';
  document.title = `Sweep #${sweep.id} — zoolab`;
  historyChart(sweep.trials);
  importancesChart(importances);
  parallelChart(sweep, sweep.trials);
  renderTrials(sweep.trials);
  $('sweep-page').dataset.loaded = String(sweep.id);
}

async function loadSweep(id) {
  const seq = ++loadSeq;
  let sweep;
  let importances;
  try {
    [sweep, importances] = await Promise.all([api(`/sweeps/${id}`), api(`/sweeps/${id}/importances`)]);
  } catch (e) {
    if (seq !== loadSeq) return;
    $('sweep-page').hidden = true;
    $('sweep-missing').hidden = false;
    $('sweep-missing').textContent = e instanceof ApiError && e.status === 404 ? `Sweep #${id} does not exist.` : e.message;
    return;
  }
  if (seq !== loadSeq || id !== shownId) return;
  trialRuns = new Set(sweep.trials.map((t) => t.run_id).filter(Boolean));
  $('sweep-missing').hidden = true;
  $('sweep-page').hidden = false;
  renderSweep(sweep, importances);
  clearTimeout(pollTimer);
  if (sweep.status === 'running' && visible) pollTimer = setTimeout(() => reload(), POLL_MS);
}

function reload() {
  if (!visible) return;
  if (shownId) loadSweep(shownId).catch((e) => toast(e.message, 'error'));
  else loadList().catch((e) => toast(e.message, 'error'));
}

const scheduleReload = debounce(reload, 700);

// --- the view ---------------------------------------------------------------------------------

export function show(state) {
  visible = true;
  shownId = state.sweep || null;
  $('sweeps-home').hidden = Boolean(shownId);
  $('sweep-detail').hidden = !shownId;
  if (!shownId) {
    document.title = 'Sweeps — zoolab';
    if (!$('sweep-preset').options.length) initForm().catch((e) => toast(`Could not load the zoo: ${e.message}`, 'error'));
  }
  reload();
}

export function hide() {
  visible = false;
  clearTimeout(pollTimer);
}

// A trial's run changed (store.js): its sweep's figures did too.
function onRunChange({ type, id, run }) {
  if (!visible || (type !== 'status' && type !== 'epoch')) return;
  if (shownId ? trialRuns.has(id) || run?.sweep_id === shownId : type === 'status' && run?.sweep_id) scheduleReload();
}

export function init() {
  store.subscribe(onRunChange);
  $('sweep-form').addEventListener('submit', submit);
  $('sweep-preset').addEventListener('change', () => loadSpace().catch((e) => toast(e.message, 'error')));
  $('sweep-add').addEventListener('click', () => addRow());
  $('sweep-sampler').addEventListener('change', () => {
    for (const row of $('sweep-params').children) syncRow(row);
    const grid = $('sweep-sampler').value === 'grid';
    const budget = $('sweep-budget');
    budget.placeholder = grid ? 'the grid\'s size' : `1–${space?.max_runs ?? 100}`;
    if (grid) budget.value = ''; // a grid runs every point
    else if (!budget.value) budget.value = '12';
  });
  $('sweep-params').addEventListener('change', (e) => {
    const row = e.target.closest('.param-row');
    if (!row) return;
    if (e.target.classList.contains('param-key')) fillRow(row);
    if (e.target.classList.contains('param-mode')) syncRow(row);
  });
  $('sweep-params').addEventListener('click', (e) => {
    if (e.target.classList.contains('param-remove')) e.target.closest('.param-row').remove();
  });
  $('sweeps-tbody').addEventListener('click', (e) => {
    const link = e.target.closest('a[data-sweep]');
    if (!link || e.metaKey || e.ctrlKey || e.shiftKey) return;
    e.preventDefault();
    setState({ view: 'sweeps', sweep: Number(link.dataset.sweep) }, { push: true });
  });
  $('sweep-back').addEventListener('click', (e) => {
    e.preventDefault();
    setState({ view: 'sweeps', sweep: null }, { push: true });
  });
  $('sweep-cancel').addEventListener('click', async () => {
    if (!shownId || !confirm(`Cancel sweep #${shownId}? Its queued trials are cancelled; running ones finish.`)) return;
    try {
      await post(`/sweeps/${shownId}/cancel`);
      toast(`Sweep #${shownId} cancelled.`);
      reload();
    } catch (err) {
      toast(err.message, 'error');
    }
  });
}
