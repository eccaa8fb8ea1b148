// The Run detail view: facts, configuration, its network (layers, shapes, parameters), where it
// was derived from and what that changed, live curves, and once the run has finished its
// confusion matrix, per-class accuracy, misclassified test images and checkpoint; for a failed
// run, the error and its traceback. "Edit & launch" and "Save as my preset" start from it.

import { api, ApiError } from './api.js';
import { RunCurves } from './curves.js';
import { forkLink } from './fork.js';
import { datetime, esc, int, pct, seconds, value } from './format.js';
import { deltaHtml } from './lineage.js';
import { NetworkTable } from './network.js';
import { accuracyRange, axis, draw, layout, runColor, zoomedTitle } from './plots.js';
import { savePreset } from './presets.js';
import { setState } from './state.js';
import * as store from './store.js';
import { ACTIVE, actionButtons, bindActions, progressHtml, statusBadge } from './widgets.js';

const $ = (id) => document.getElementById(id);
let current = null; // {id, curves, artifactsFor, derivedFor}; curves once the run is shown
let network = null; // the read-only layer table
let networkFor = null; // the run it shows

function missing(text) {
  $('detail-body').hidden = true;
  $('detail-missing').hidden = false;
  $('detail-missing').innerHTML = text;
}

function renderHead(run) {
  $('detail-title').innerHTML = `<span class="run-id">#${run.id}</span> ${esc(run.name)} ${statusBadge(run)}`;
  $('detail-subtitle').innerHTML = `<code>${esc(run.model)}</code> on ${esc(run.dataset)} · ${int(run.params)} parameters`
    + ` · created ${esc(datetime(run.created_at))}`;
  const links = [];
  if (run.has_checkpoint) {
    links.push(`<a class="btn btn-small" id="detail-checkpoint" data-testid="detail-checkpoint"
      href="/runs/${run.id}/checkpoint" download="run-${run.id}.pt">Checkpoint</a>`);
  }
  links.push(`<a class="btn btn-small" id="detail-metrics-csv" data-testid="detail-metrics-csv"
    href="/runs/${run.id}/metrics.csv" download>Metrics CSV</a>`);
  links.push(forkLink(run), `<button type="button" class="btn btn-small" data-save-preset="${run.id}"
    data-testid="save-preset-${run.id}">Save as my preset</button>`);
  $('detail-actions').innerHTML = links.join('') + actionButtons(run, { withDelete: true });
  renderProgress(run);
  document.title = `#${run.id} ${run.name} — zoolab`;
  const nav = $('nav-detail');
  nav.hidden = false;
  nav.textContent = `Run #${run.id}`;
}

function renderProgress(run) {
  $('detail-progress').innerHTML = ACTIVE.has(run.status) ? `<div class="card">${progressHtml(run)}</div>` : '';
}

function renderFacts(run) {
  const notesAcc = run.notes_acc != null ? ` <span class="notes">notes ${pct(run.notes_acc)}</span>` : '';
  const notesTime = run.notes_seconds != null ? ` <span class="notes">notes ${seconds(run.notes_seconds)}</span>` : '';
  const versions = run.versions && Object.keys(run.versions).length
    ? Object.entries(run.versions).map(([k, v]) => `${k} ${v}`).join(', ') : null;
  const facts = [
    ['Best test accuracy', `${pct(run.best_test_acc)}${notesAcc}`],
    ['Final test accuracy', pct(run.final_test_acc)],
    ['Epochs', `${run.epochs_done ?? 0} of ${run.epochs_total ?? run.config?.epochs ?? '?'}`],
    ['Training time', `${seconds(run.total_seconds)}${notesTime}`],
    ['Images / s', int(run.images_per_second)],
    ['Parameters', int(run.params)],
    ['Device', esc(run.device || '—')],
    ['Worker', esc(run.worker || '—')],
    ['Attempts', esc(run.attempts ?? '—')],
    ['Started', esc(datetime(run.started_at))],
    ['Finished', esc(datetime(run.finished_at))],
    ['Versions', esc(versions || '—')],
  ];
  $('detail-facts').innerHTML = facts.map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join('');
  const config = run.config || {};
  $('detail-config').innerHTML = Object.keys(config).map((k) =>
    `<tr><th><code>${esc(k)}</code></th><td>${esc(value(config[k]))}</td></tr>`).join('')
    || '<tr><td class="muted">no configuration stored</td></tr>';
  const failed = Boolean(run.error || run.traceback);
  $('detail-error').hidden = !failed;
  $('detail-error-message').textContent = run.error || '';
  $('detail-traceback-box').hidden = !run.traceback;
  $('detail-traceback').textContent = run.traceback || '';
}

// The curves' options live in the URL: smoothing of the train curves, the loss on a log scale.
function curveOptions(state) {
  $('detail-smooth').value = state.smooth;
  $('detail-smooth-value').textContent = state.smooth ? state.smooth.toFixed(2) : 'off';
  $('detail-logy').checked = state.logy === '1';
  return { smooth: state.smooth, logY: state.logy === '1' };
}

// "Derived from #N" (or "Started from preset P"): what changed against it and what it did.
async function renderDerived(run) {
  const mine = current;
  const key = `${run.id}:${run.status}`; // the deltas move when the run ends
  if (mine.derivedFor === key) return;
  mine.derivedFor = key;
  let answer;
  try {
    answer = await api(`/runs/${run.id}/changes`);
  } catch (e) {
    mine.derivedFor = null;
    if (!(e instanceof ApiError && e.status === 404)) throw e;
    return;
  }
  if (current !== mine) return;
  const { edge, parent } = answer;
  const box = $('detail-derived');
  box.hidden = !edge;
  if (!edge) return;
  const fromRun = edge.source.kind === 'run';
  const head = fromRun
    ? `Derived from <a href="#view=detail&run=${parent.id}" data-go-view="detail" data-go-run="${parent.id}"
        data-testid="derived-parent"><span class="run-id">#${parent.id}</span> ${esc(parent.name)}</a>`
    : `Started from the preset <a href="#view=launch&preset=${esc(edge.source.id)}"><code>${esc(edge.source.id)}</code></a>`;
  const changes = edge.changes.length
    ? `<ul class="changes" data-testid="derived-changes">${edge.changes.map((c) => `<li>${esc(c.text)}</li>`).join('')}</ul>`
    : `<p class="muted">No change: the same configuration${fromRun ? ' (another seed or a re-run)' : ' as the preset'}.</p>`;
  const delta = deltaHtml(edge.delta, { vsNotes: !fromRun });
  box.innerHTML = `<h3>${head}</h3>${changes}${delta ? `<p class="derived-delta" data-testid="derived-delta">${delta}</p>` : ''}`;
}

function renderNetwork(run) {
  if (networkFor === run.id) return;
  networkFor = run.id;
  network.set(run.config?.layers || [], run.config?.dataset || run.dataset);
}

function render(run) {
  renderHead(run);
  renderFacts(run);
  renderDerived(run);
  renderNetwork(run);
  const finished = run.status === 'finished';
  $('detail-artifacts-pending').hidden = !ACTIVE.has(run.status);
  if (!finished) $('detail-artifacts').hidden = true;
  if (finished && current.artifactsFor !== run.id) loadArtifacts(run);
}

async function loadArtifacts(run) {
  current.artifactsFor = run.id;
  let art;
  try {
    art = await api(`/runs/${run.id}/artifacts`);
  } catch (e) {
    current.artifactsFor = null;
    if (!(e instanceof ApiError && e.status === 404)) throw e;
    return;
  }
  if (current?.id !== run.id) return;
  $('detail-artifacts').hidden = false;
  const names = art.class_names || [];
  const nameOf = (c) => (typeof c === 'number' ? names[c] ?? String(c) : String(c));
  const matrix = art.confusion_matrix || [];
  let offMax = 0;
  matrix.forEach((row, i) => row.forEach((v, j) => { if (i !== j) offMax = Math.max(offMax, v); }));
  // Colours scaled to the largest confusion: the diagonal saturates, the mistakes show.
  draw($('detail-confusion'), [{
    type: 'heatmap', z: matrix, x: names, y: names, colorscale: 'Blues', reversescale: true, zmin: 0, zmax: offMax || undefined,
    texttemplate: '%{z}', textfont: { size: 10 }, showscale: false,
    hovertemplate: 'true %{y}, predicted %{x}: %{z}<extra></extra>',
  }], layout({
    height: 420, margin: { l: 80, r: 8, t: 8, b: 70 },
    xaxis: axis({ title: { text: 'predicted' }, tickangle: -40, type: 'category' }),
    yaxis: axis({ title: { text: 'true' }, autorange: 'reversed', type: 'category' }),
  }));
  // Zoomed to the classes' spread (97.3–99.6% on MNIST must read apart), the axis saying so.
  const perClass = art.per_class_acc || [];
  const zoom = accuracyRange(perClass);
  draw($('detail-perclass'), [{
    type: 'bar', x: names, y: perClass, text: perClass.map((a) => pct(a, 1)),
    textposition: 'outside', cliponaxis: false, marker: { color: runColor(run.id) },
    hovertemplate: '%{x}: %{y:.2%}<extra></extra>',
  }], layout({
    height: 420, margin: { l: 56, r: 8, t: 20, b: 70 },
    xaxis: axis({ tickangle: -40, type: 'category' }),
    yaxis: axis({ tickformat: '.1~%', range: zoom.range, title: { text: zoomedTitle('test accuracy', zoom.note) } }),
  }));
  const wrong = art.misclassified || [];
  $('detail-gallery-count').textContent = `(${wrong.length} shown)`;
  $('detail-gallery').innerHTML = wrong.map((m) => `
    <figure data-testid="misclassified-${m.k}">
      <img src="/runs/${run.id}/misclassified/${m.k}.png" alt="test image ${esc(m.index)}: ${esc(nameOf(m.true))}, predicted ${esc(nameOf(m.pred))}"
        width="64" height="64">
      <figcaption><span class="true">${esc(nameOf(m.true))}</span> → <span class="pred">${esc(nameOf(m.pred))}</span>
        <span class="muted">#${esc(m.index)}</span></figcaption>
    </figure>`).join('') || '<p class="muted">No misclassified images stored.</p>';
}

function onChange({ type, id, run }) {
  if (!current?.curves || id !== current.id) return;
  if (type === 'deleted') {
    missing(`Run #${current.id} was deleted. <a href="#view=runs">Back to the runs.</a>`);
    teardown();
  } else if (type === 'progress' || type === 'epoch') {
    renderProgress(run);
    if (type === 'epoch') renderFacts(run);
  } else {
    render(run);
    if (run.status === 'failed' && current.curves.failure !== run.error) current.curves.setOptions({ failure: run.error });
  }
}

function teardown() {
  current?.curves?.destroy();
  current = null;
}

export async function show(state) {
  const id = state.run;
  if (!id) {
    missing('No run chosen. Open one from the <a href="#view=runs">Runs</a> table.');
    return;
  }
  if (current?.id === id) {
    current.curves?.setOptions(curveOptions(state));
    return;
  }
  teardown();
  const mine = { id, curves: null, artifactsFor: null, derivedFor: null };
  current = mine;
  if (store.get(id)) renderHead(store.get(id)); // the copy a list put in the store, until the fetch answers
  let run;
  try {
    run = await store.fetchRun(id);
  } catch (e) {
    if (current !== mine) return;
    teardown();
    missing(e instanceof ApiError && e.status === 404
      ? `Run #${id} does not exist. <a href="#view=runs">Back to the runs.</a>` : esc(e.message));
    return;
  }
  if (current !== mine) return;
  $('detail-missing').hidden = true;
  $('detail-body').hidden = false;
  mine.curves = new RunCurves($('detail-curves'), id, {
    height: 320, emptyText: ACTIVE.has(run.status) ? undefined : 'nothing was recorded',
    failure: run.status === 'failed' ? run.error : null, ...curveOptions(state),
  });
  render(run);
  await mine.curves.load();
}

export function hide() {
  teardown();
}

export function init() {
  network = new NetworkTable($('detail-network'));
  $('detail-actions').addEventListener('click', (e) => {
    const button = e.target.closest('button[data-save-preset]');
    const run = button && store.get(Number(button.dataset.savePreset));
    if (run) savePreset(run);
  });
  store.subscribe(onChange);
  $('detail-smooth').addEventListener('input', (e) => setState({ smooth: Number(e.target.value) }));
  $('detail-logy').addEventListener('change', (e) => setState({ logy: e.target.checked ? '1' : '' }));
  // A delete leaves for the runs; a re-run opens the new run.
  bindActions($('detail-actions'), (result, run) => {
    if (result.deleted) setState({ view: 'runs', run: null }, { push: true });
    else if (result.id !== run.id) setState({ view: 'detail', run: result.id }, { push: true });
  });
}
