// The Reproduction view: every experiment of the notes, its preset trained over several seeds
// with one recipe (epochs and subsets chosen here, the preset's defaults otherwise): the mean
// ± std of best test accuracy beside the notes' figure, reproduced or not (GET /reproduction).
// One click queues the seeds still missing (POST /reproduction/seeds); the table exports as
// CSV or Markdown (GET /reproduction.csv, .md). Rows follow the runs as they finish.

import { api, loadOptions, post, query } from './api.js';
import { esc, int, isNum, pct, seconds } from './format.js';
import { setState } from './state.js';
import * as store from './store.js';
import { debounce, toast } from './widgets.js';

// The recipe's inputs and the state keys (URL) that hold them.
const RECIPE = [['epochs', 'repochs'], ['train_subset', 'rtrain'], ['test_subset', 'rtest'], ['seeds', 'rseeds']];
const $ = (id) => document.getElementById(id);

let recipe = { dataset: 'mnist', seeds: 3 };
let rows = [];
let visible = false;
let loadSeq = 0;
const selected = new Set(); // presets ticked; none: every preset with a notes' figure
const scheduleLoad = debounce(() => load(), 800);

function recipeQuery() {
  return query({ dataset: recipe.dataset, epochs: recipe.epochs, train_subset: recipe.train_subset,
    test_subset: recipe.test_subset, seeds: recipe.seeds });
}

const points = (x) => `${x > 0 ? '+' : x < 0 ? '−' : '±'}${Math.abs(x * 100).toFixed(2)} pts`;

function verdictHtml(row) {
  if (row.reproduced === null) {
    const why = row.notes_acc == null ? 'the notes recorded no accuracy' : 'no finished seed yet';
    return `<span class="verdict none" title="${why}">—</span>`;
  }
  return row.reproduced
    ? `<span class="verdict yes" title="mean best accuracy reaches the notes' figure">reproduced</span>`
    : `<span class="verdict no" title="mean best accuracy is below the notes' figure">not reproduced</span>`;
}

// Seeds 0..wanted-1: finished, queued or running, missing.
function seedsHtml(row) {
  const wanted = [...Array(recipe.seeds).keys()];
  const finished = wanted.filter((s) => row.seeds.includes(s));
  const going = wanted.filter((s) => !row.seeds.includes(s) && !row.missing_seeds.includes(s));
  const parts = [`${finished.length} of ${recipe.seeds} finished`];
  if (going.length) parts.push(`${going.length} queued or running`);
  const extra = row.n - finished.length;
  if (extra > 0) parts.push(`+${extra} other seeds`);
  return parts.join(' · ');
}

function rowHtml(row) {
  const best = row.best_test_acc;
  const spread = best.std === null ? '' : ` ± ${(best.std * 100).toFixed(2)}`;
  const missing = row.missing_seeds;
  const id = esc(row.preset);
  return `<tr data-preset="${id}" data-testid="repro-row-${id}">
    <td class="col-select"><input type="checkbox" class="repro-select" data-preset="${id}" data-testid="repro-select-${id}"
      aria-label="Choose ${id}" ${selected.has(row.preset) ? 'checked' : ''}></td>
    <td class="num col-order">${row.order}</td>
    <td><code>${id}</code><div class="muted small col-desc">${esc(row.description)}</div></td>
    <td class="num col-params">${int(row.params)}</td>
    <td class="num" data-testid="repro-notes-${id}">${pct(row.notes_acc)}</td>
    <td data-testid="repro-seeds-${id}">${seedsHtml(row)}</td>
    <td class="num" data-testid="repro-mean-${id}" data-n="${best.n}">${best.mean === null ? '—' : `${pct(best.mean)}${spread}`}</td>
    <td class="num muted col-range">${best.n > 1 ? `${pct(best.min)}–${pct(best.max)}` : '—'}</td>
    <td class="num" data-testid="repro-margin-${id}">${isNum(row.margin) ? points(row.margin) : '—'}</td>
    <td data-testid="repro-verdict-${id}">${verdictHtml(row)}</td>
    <td class="num col-time">${seconds(row.total_seconds.mean)}${row.notes_seconds != null ? `<div class="notes">notes ${seconds(row.notes_seconds)}</div>` : ''}</td>
    <td class="col-actions">${missing.length ? `<button type="button" class="btn btn-small" data-queue="${id}"
      data-testid="repro-queue-${id}">Queue seed${missing.length > 1 ? 's' : ''} ${missing.join(', ')}</button>` : ''}</td>
  </tr>`;
}

// The presets "Queue the missing seeds" queues for: those ticked, or every one with a figure.
const chosen = () => (selected.size ? rows.filter((r) => selected.has(r.preset)) : rows.filter((r) => r.notes_acc != null));

function renderActions() {
  const list = chosen();
  const count = list.reduce((n, r) => n + r.missing_seeds.length, 0);
  const button = $('repro-queue');
  button.disabled = count === 0;
  const which = selected.size ? `${list.length} ticked preset${list.length === 1 ? '' : 's'}` : 'every preset with a notes\' figure';
  button.textContent = count ? `Queue ${count} missing seed${count === 1 ? '' : 's'} (${which})` : `No seed missing (${which})`;
  $('repro-csv').href = `/reproduction.csv${recipeQuery()}`;
  $('repro-md').href = `/reproduction.md${recipeQuery()}`;
}

function render() {
  $('repro-tbody').innerHTML = rows.map(rowHtml).join('');
  $('repro-empty').hidden = rows.length > 0;
  const done = rows.filter((r) => r.reproduced !== null);
  const yes = done.filter((r) => r.reproduced).length;
  $('repro-summary').textContent = done.length
    ? `${yes} of ${done.length} experiments with a figure and a finished seed reproduced.` : '';
  renderActions();
}

function renderRecipe(datasets) {
  $('repro-dataset').innerHTML = datasets.map((d) => `<button type="button" role="tab" data-dataset="${esc(d)}"
    data-testid="repro-dataset-${esc(d)}" aria-selected="${d === recipe.dataset}">${esc(d)}</button>`).join('');
  for (const [key] of RECIPE) {
    const input = $(`repro-${key}`);
    if (document.activeElement !== input) input.value = recipe[key] ?? '';
  }
  const parts = [recipe.epochs ? `${recipe.epochs} epoch${recipe.epochs === 1 ? '' : 's'}` : 'each preset\'s epochs',
    recipe.train_subset ? `the first ${int(recipe.train_subset)} training images` : 'the whole training set',
    recipe.test_subset ? `evaluated on ${int(recipe.test_subset)} test images` : 'evaluated on the whole test set'];
  $('repro-recipe-text').textContent = `Recipe: each preset's defaults with ${parts.join(', ')}; seeds 0 to ${recipe.seeds - 1}.`
    + ' Reproduced: the mean best accuracy over the finished seeds reaches the notes\' figure.';
}

async function load() {
  if (!visible) return;
  const seq = ++loadSeq;
  try {
    const answer = await api(`/reproduction${recipeQuery()}`);
    if (seq !== loadSeq) return;
    rows = answer;
    $('repro-error').hidden = true;
  } catch (e) {
    if (seq !== loadSeq) return;
    rows = [];
    $('repro-error').hidden = false;
    $('repro-error').textContent = e.message;
  }
  render();
  $('repro-table').dataset.loaded = String(seq);
}

async function queueSeeds(presets) {
  const body = { dataset: recipe.dataset, seeds: recipe.seeds };
  for (const [key] of RECIPE.slice(0, 3)) if (recipe[key]) body[key] = recipe[key];
  if (presets) body.presets = presets;
  try {
    const { run_ids: ids } = await post('/reproduction/seeds', body);
    toast(ids.length ? `Queued ${ids.length} run${ids.length === 1 ? '' : 's'}: #${ids.join(', #')}.` : 'No seed was missing.');
  } catch (e) {
    toast(`Queue the missing seeds: ${e.message}`, 'error', 10000);
  }
  load();
}

export async function show(state) {
  visible = true;
  const options = await loadOptions().catch(() => ({}));
  // Fashion-MNIST has no notes of its own.
  const datasets = (options.datasets || ['mnist', 'cifar10']).filter((d) => d !== 'fashion-mnist');
  const next = {
    dataset: datasets.includes(state.rds) ? state.rds : datasets[0],
    epochs: state.repochs || null, train_subset: state.rtrain || null, test_subset: state.rtest || null,
    seeds: Math.min(Math.max(state.rseeds || 3, 1), 20),
  };
  if (next.dataset !== recipe.dataset) selected.clear();
  recipe = next;
  renderRecipe(datasets);
  load();
}

export function hide() {
  visible = false;
}

// A recipe input: empty, or a whole number within the API's range (it says why otherwise).
function readRecipe() {
  const patch = {};
  const problems = [];
  for (const [key, stateKey] of RECIPE) {
    const raw = $(`repro-${key}`).value.trim();
    const n = Number(raw);
    if (raw === '' && key !== 'seeds') patch[stateKey] = null;
    else if (Number.isInteger(n) && n >= 1) patch[stateKey] = n;
    else problems.push(`${key.replace('_', ' ')}: a whole number from 1${key === 'seeds' ? ' to 20' : ''}, or empty`);
  }
  return { patch, problems };
}

export function init() {
  $('repro-dataset').addEventListener('click', (e) => {
    const b = e.target.closest('button[data-dataset]');
    if (b) setState({ rds: b.dataset.dataset });
  });
  $('repro-recipe').addEventListener('submit', (e) => e.preventDefault());
  $('repro-recipe').addEventListener('change', (e) => {
    if (!e.target.matches('input')) return;
    const { patch, problems } = readRecipe();
    $('repro-error').hidden = !problems.length;
    $('repro-error').textContent = problems.join('; ');
    if (!problems.length) setState(patch);
  });
  $('repro-tbody').addEventListener('change', (e) => {
    const box = e.target.closest('.repro-select');
    if (!box) return;
    if (box.checked) selected.add(box.dataset.preset); else selected.delete(box.dataset.preset);
    renderActions();
  });
  $('repro-tbody').addEventListener('click', (e) => {
    const b = e.target.closest('button[data-queue]');
    if (b) queueSeeds([b.dataset.queue]);
  });
  $('repro-queue').addEventListener('click', () => queueSeeds(selected.size ? [...selected] : null));
  // A run that starts, ends or disappears moves the figures.
  store.subscribe(({ type }) => {
    if (visible && (type === 'status' || type === 'deleted')) scheduleLoad();
  });
}
