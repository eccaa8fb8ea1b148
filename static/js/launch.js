// The Launch view: start from a preset — the notes' or one saved by the user — or from a run
// ("Edit & launch", #view=launch&from=ID), change its hyper-parameters and its network in the
// layer table, launch. Each field and layer that differs from the starting point is marked; a
// run started from a run records it as its parent. The server validates; its 422 messages are
// shown next to the fields they name. Also queues a dataset's whole chronology, and saves,
// renames and deletes the user's presets.

import { ApiError, api, loadOptions, loadZoo, post } from './api.js';
import { esc, int, ordinal, pct, seconds, value } from './format.js';
import { layerDiff, NetworkTable } from './network.js';
import { deletePreset, renamePreset, savePreset } from './presets.js';
import { readState, setState } from './state.js';
import * as store from './store.js';
import { toast } from './widgets.js';

// The hyper-parameters of POST /runs, grouped as the form shows them. `options` names the list
// in GET /zoo/options; `limit` names a range in its `limits`.
const GROUPS = [
  ['Training', [
    { key: 'name', label: 'Run name', type: 'text' },
    { key: 'dataset', label: 'Dataset', type: 'select', options: 'datasets' },
    { key: 'epochs', label: 'Epochs', type: 'int', limit: 'epochs' },
    { key: 'batch_size', label: 'Batch size', type: 'int', limit: 'batch_size' },
    { key: 'seed', label: 'Seed', type: 'int', placeholder: 'preset default' },
    { key: 'seeds', label: 'Seeds', type: 'int', placeholder: '1', hint: 'a group: seeds 0…N−1' },
  ]],
  ['Optimiser', [
    { key: 'optimizer', label: 'Optimiser', type: 'select', options: 'optimizers' },
    { key: 'lr', label: 'Learning rate', type: 'float' },
    { key: 'momentum', label: 'Momentum', type: 'float', hint: 'SGD' },
    { key: 'weight_decay', label: 'Weight decay', type: 'float' },
    { key: 'grad_clip', label: 'Gradient clip', type: 'float', placeholder: 'none' },
  ]],
  ['Schedule', [
    { key: 'scheduler', label: 'LR scheduler', type: 'select', options: 'schedulers' },
    { key: 'gamma', label: 'Gamma', type: 'float', hint: 'exponential' },
    { key: 'power', label: 'Power', type: 'float', hint: 'polynomial' },
    { key: 'total_iters', label: 'Total iters', type: 'int', hint: 'polynomial' },
  ]],
  ['Data', [
    { key: 'augment', label: 'Augmentation', type: 'select', options: 'augments' },
    { key: 'augment_from_epoch', label: 'Augment from epoch', type: 'int' },
    { key: 'normalize', label: 'Normalisation', type: 'select', options: 'normalizations' },
    { key: 'train_subset', label: 'Train subset', type: 'int', placeholder: 'all' },
    { key: 'test_subset', label: 'Test subset', type: 'int', placeholder: 'all' },
  ]],
];
// Keys of a run's config the form does not show as a field: the network has its table.
const KNOWN = new Set([...GROUPS.flatMap(([, fields]) => fields.map((f) => f.key)), 'model', 'layers']);

let zoo = [];
let options = {};
let saved = []; // GET /presets: the user's presets with their names
// Where the form starts: {key, preset, run}; run (with its config) when forked from a run.
let source = null;
let fields = []; // the fields shown: {key, type, def (what the server fills in), base (the start)}
let shownDataset = '';
let showSeq = 0;
let table = null;
let busy = false;
let lastLaunched = null;

const $ = (id) => document.getElementById(id);
const NARROW = window.matchMedia('(max-width: 1000px)'); // one column: the form is below the presets
const same = (a, b) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
const normLayers = (layers) => (layers || []).map((l) => String(l).trim().split(/\s+/).join(' '));

function datasetsOf() {
  const fromOptions = (options.datasets || []).map((d) => (typeof d === 'string' ? d : d.id));
  const fromZoo = [...new Set(zoo.map((p) => p.dataset))];
  return fromOptions.length ? fromOptions.filter((d) => fromZoo.includes(d)).concat(fromZoo.filter((d) => !fromOptions.includes(d))) : fromZoo;
}

const isUsers = (p) => p.source === 'user';

function presetsOf(dataset, users = false) {
  return zoo.filter((p) => p.dataset === dataset && isUsers(p) === users).sort((a, b) => (a.order ?? 0) - (b.order ?? 0));
}

function notesText(p) {
  if (isUsers(p)) return 'your preset';
  const parts = [];
  if (p.notes_acc != null) parts.push(pct(p.notes_acc));
  if (p.notes_seconds != null) parts.push(seconds(p.notes_seconds));
  return parts.length ? `notes: ${parts.join(' · ')}` : 'notes: not recorded';
}

// The code builds the network the notes describe, with its every parameter; the notes wrote
// their own count (leaving out biases, or rounded), so the two are said apart.
function paramsText(p) {
  const built = `${int(p.params)} parameters as the code builds the network`;
  const written = String(p.notes_params || '').trim();
  if (!written) return built;
  const n = Number(written);
  if (!Number.isFinite(n)) return `${built} (the notes' own count: ${written}, rounded)`;
  if (n === p.params) return `${built}, as in the notes`;
  const gap = p.params - n;
  return `${built} (the notes' own count: ${written}, ${int(Math.abs(gap))} ${gap > 0 ? 'fewer' : 'more'})`;
}

function renderDatasets(current) {
  $('launch-dataset').innerHTML = datasetsOf().map((d) => `<button type="button" role="tab" data-dataset="${esc(d)}"
    data-testid="dataset-${esc(d)}" aria-selected="${d === current}">${esc(d)}
    <span class="count">${presetsOf(d).length + presetsOf(d, true).length}</span></button>`).join('');
}

function presetItem(p, label, selected) {
  const mine = isUsers(p) ? saved.find((s) => s.id === p.id) : null;
  const title = mine ? `${mine.name}${mine.description && mine.description !== mine.name ? ` — ${mine.description}` : ''}`
    : p.description || '';
  const buttons = mine ? `<span class="preset-actions">
      <button type="button" class="btn btn-small" data-rename="${esc(p.id)}" data-testid="rename-preset-${esc(p.id)}">Rename</button>
      <button type="button" class="btn btn-small btn-danger" data-delete="${esc(p.id)}" data-testid="delete-preset-${esc(p.id)}">Delete</button>
    </span>` : '';
  return `<li class="${mine ? 'mine' : ''}"><button type="button" class="preset" data-preset="${esc(p.id)}" data-testid="preset-${esc(p.id)}"
        aria-pressed="${p.id === selected}">
      <span class="preset-order">${label}</span>
      <span class="preset-main"><code>${esc(p.id)}</code><span class="preset-desc">${esc(title)}</span></span>
      <span class="preset-figs"><span>${int(p.params)} params</span><span class="notes">${esc(notesText(p))}</span></span>
    </button>${buttons}</li>`;
}

function renderPresets(dataset, selected) {
  const notes = presetsOf(dataset);
  const mine = presetsOf(dataset, true);
  $('preset-list').innerHTML = notes.map((p, i) => presetItem(p, i + 1, selected)).join('')
    + (mine.length ? `<li class="preset-group" data-testid="user-presets">Your presets</li>${
      mine.map((p) => presetItem(p, '★', selected)).join('')}` : '');
  $('launch-chronology').textContent = `Launch the whole chronology (${notes.length})`;
  $('launch-chronology').disabled = notes.length === 0;
  $('launch-chronology-hint').textContent = `Queues every ${dataset} preset of the notes in their order, each with its defaults.`;
}

// Every field of POST /runs, plus any config key the form does not know.
function fieldSpecs(config) {
  const groups = GROUPS.map(([title, fs]) => [title, [...fs]]);
  const extra = Object.keys(config).filter((k) => !KNOWN.has(k)).map((k) => {
    const v = config[k];
    const type = typeof v === 'boolean' ? 'bool' : typeof v === 'number' ? (Number.isInteger(v) ? 'int' : 'float') : 'json';
    return { key: k, label: k.replace(/_/g, ' '), type };
  });
  if (extra.length) groups.push(['Other', extra]);
  return groups.filter(([, fs]) => fs.length);
}

function choices(field, def) {
  const list = (options[field.options] || []).map((o) => (o !== null && typeof o === 'object' ? (o.id ?? o.name) : o));
  const known = def === undefined || list.some((o) => same(o, def));
  return known ? list : [def, ...list];
}

function inputHtml(field, start) {
  const id = `f-${field.key}`;
  const common = `id="${id}" name="${esc(field.key)}" data-testid="field-${esc(field.key)}" aria-describedby="err-${esc(field.key)}"`;
  if (field.type === 'select') {
    return `<select ${common}>${choices(field, start).map((o) => `<option value="${esc(JSON.stringify(o))}"
      ${same(o, start) ? 'selected' : ''}>${esc(o === null ? 'none' : o)}</option>`).join('')}</select>`;
  }
  if (field.type === 'bool') return `<input type="checkbox" ${common} ${start ? 'checked' : ''}>`;
  const mode = field.type === 'int' ? 'numeric' : field.type === 'float' ? 'decimal' : 'text';
  const shown = start === null || start === undefined ? '' : field.type === 'json' ? JSON.stringify(start) : String(start);
  const range = field.limit && options.limits?.[field.limit];
  const placeholder = field.placeholder || (range ? `${range[0]}–${range[1]}` : '');
  return `<input type="text" inputmode="${mode}" autocomplete="off" ${common} value="${esc(shown)}"
    placeholder="${esc(placeholder)}">`;
}

// A field's value as the request would carry it; undefined: left empty, the server fills it in.
function fieldValue(f) {
  const input = $(`f-${f.key}`);
  if (!input) return undefined;
  if (f.type === 'select') return JSON.parse(input.value);
  if (f.type === 'bool') return input.checked;
  const raw = input.value.trim();
  if (raw === '') return undefined;
  // A number field holding text is sent as text, so the server's message names the problem.
  if (f.type === 'int' || f.type === 'float') return /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(raw) ? Number(raw) : raw;
  if (f.type === 'json') { try { return JSON.parse(raw); } catch { return raw; } }
  return raw;
}

const baseName = () => (source.run ? `#${source.run.id}` : source.preset.id);

function renderHead() {
  const { preset, run } = source;
  if (run) {
    $('launch-preset-title').innerHTML = `${run.status === 'failed' ? 'Retry with changes' : 'Edit &amp; launch'}:
      <span class="run-id">#${run.id}</span> ${esc(run.name)}`;
    $('launch-preset-summary').innerHTML = `Filled with run #${run.id}'s configuration and network (preset
      <code>${esc(preset.id)}</code>${preset.missing ? ', since deleted' : ''}); the new run is recorded as derived from it.
      ${run.error ? `It failed: <strong>${esc(run.error)}</strong>.` : ''}
      <a href="#view=launch&ds=${esc(preset.dataset)}&preset=${esc(preset.id)}" data-testid="launch-unfork">Start from the preset instead</a>.`;
  } else {
    $('launch-preset-title').innerHTML = `<code>${esc(preset.id)}</code>`;
    $('launch-preset-summary').textContent = `${preset.description || ''} — ${paramsText(preset)}; ${notesText(preset)}.`;
  }
  $('launch-reset').textContent = run ? `Reset to #${run.id}'s configuration` : 'Reset to preset defaults';
}

function renderForm() {
  const box = $('launch-fields');
  $('launch-network').hidden = !source;
  $('launch-changes').hidden = true;
  if (!source) {
    box.innerHTML = '<p class="muted">Pick a preset of the zoo.</p>';
    $('launch-preset-title').textContent = 'Choose a preset';
    $('launch-preset-summary').textContent = '';
    updateSubmit();
    return;
  }
  const { preset, run } = source;
  // What the server fills in for a field left out, and what the form starts from.
  const defaults = { name: preset.id, dataset: preset.dataset, seed: 0, ...(preset.defaults || {}) };
  const start = run ? { ...defaults, ...run.config, name: '' } : { ...defaults, name: '', seed: undefined };
  const groups = fieldSpecs(start);
  fields = groups.flatMap(([, fs]) => fs.map((f) => ({ ...f, def: defaults[f.key], base: start[f.key] })));
  box.innerHTML = groups.map(([title, fs]) => `
    <fieldset><legend>${esc(title)}</legend><div class="field-grid">
    ${fs.map((f) => `<div class="field" data-field="${esc(f.key)}">
      <label for="f-${esc(f.key)}">${esc(f.label)}${f.hint ? ` <span class="hint">(${esc(f.hint)})</span>` : ''}</label>
      ${inputHtml(f, start[f.key])}
      <div class="field-was" data-testid="was-${esc(f.key)}" hidden></div>
      <div class="field-error" id="err-${esc(f.key)}" data-testid="error-${esc(f.key)}" hidden></div>
    </div>`).join('')}
    </div></fieldset>`).join('');
  $('f-name').placeholder = 'named by its change';
  renderHead();
  $('launch-layer-help').innerHTML = `One layer per row, its numbers after its kind: ${
    Object.values(options.layers || {}).map((usage) => `<code>${esc(usage)}</code>`).join(' · ')}.`
    + ' Enter adds a row below.';
  const layers = run?.config?.layers || preset.layers || [];
  table.set(layers, start.dataset, { base: layers, baseParams: run ? run.params : preset.params, baseName: baseName() });
  clearErrors();
  markChanges();
  updateSubmit();
}

// Marks each field that differs from where the form started, and says what changed in all.
function markChanges() {
  if (!source) return;
  const changed = [];
  for (const f of fields) {
    if (f.key === 'name') continue;
    const now = fieldValue(f);
    const was = f.base === undefined ? f.def : f.base;
    const differs = !same(now === undefined ? f.def : now, was);
    const box = document.querySelector(`#launch-fields .field[data-field="${f.key}"]`);
    box.classList.toggle('changed', differs);
    const note = box.querySelector('.field-was');
    note.hidden = !differs;
    note.textContent = differs ? `was ${value(was)}` : '';
    if (differs) changed.push(`${f.key} ${value(was)} → ${value(now === undefined ? f.def : now)}`);
  }
  const { marks, removed } = layerDiff(table.base || [], table.layers);
  const count = (kind) => marks.filter((m) => m?.kind === kind).length;
  const layerWords = [[count('inserted'), 'inserted'], [count('changed'), 'changed'], [removed.length, 'removed']]
    .filter(([n]) => n).map(([n, what]) => `${n} layer${n > 1 ? 's' : ''} ${what}`);
  const all = [...layerWords, ...changed];
  const box = $('launch-changes');
  box.hidden = !all.length && !source.run;
  box.innerHTML = all.length ? `<strong>Against ${esc(baseName())}:</strong> ${all.map(esc).join('; ')}`
    : `No change against ${esc(baseName())} yet: launched as it is, it repeats the run.`;
}

function updateSubmit() {
  const button = $('launch-submit');
  button.removeAttribute('title');
  if (!source) {
    button.disabled = true;
    button.textContent = 'Launch';
    return;
  }
  const error = table.status.error;
  if (error) {
    button.disabled = true;
    button.textContent = `Can't launch: ${error.message}`;
    button.title = 'Fix the network first: the shape checker refuses it';
    return;
  }
  button.disabled = busy;
  button.textContent = source.run ? `Launch, derived from #${source.run.id}` : `Launch ${source.preset.id}`;
}

// The request body: only what differs from what the server would fill in from the preset.
function formBody() {
  const { preset, run } = source;
  const body = { model: preset.id };
  for (const f of fields) {
    const v = fieldValue(f);
    if (v !== undefined && !same(v, f.def)) body[f.key] = v;
  }
  if (!same(normLayers(table.layers), normLayers(preset.layers))) body.layers = table.layers;
  if (run) body.parent = run.id;
  if (body.seeds === 1) delete body.seeds; // one run is no group (any other value: the server checks it)
  return body;
}

function clearErrors() {
  for (const el of document.querySelectorAll('#launch-form .field-error')) { el.hidden = true; el.textContent = ''; }
  for (const el of document.querySelectorAll('#launch-fields [aria-invalid]')) el.removeAttribute('aria-invalid');
  $('launch-error').hidden = true;
  $('launch-error').innerHTML = '';
}

function showErrors(error) {
  const items = error instanceof ApiError && error.fieldErrors.length
    ? error.fieldErrors : [{ field: null, msg: error.message }];
  let first = null;
  for (const { field, msg } of items) {
    const slot = field && $(`err-${field}`);
    if (!slot) continue;
    slot.hidden = false;
    slot.textContent = slot.textContent ? `${slot.textContent}; ${msg}` : msg;
    const input = $(`f-${field}`);
    input?.setAttribute('aria-invalid', 'true');
    first ??= input;
  }
  const box = $('launch-error');
  box.innerHTML = `<strong>The server refused this run${error.status ? ` (${error.status})` : ''}:</strong><ul>${
    items.map(({ field, msg }) => `<li>${field ? `<code>${esc(field)}</code>: ` : ''}${esc(msg)}</li>`).join('')}</ul>`;
  box.hidden = false;
  (first || box).focus?.();
}

function renderLast() {
  const box = $('launch-last');
  box.hidden = !lastLaunched;
  if (lastLaunched) {
    box.innerHTML = `Launched <a href="#view=detail&run=${lastLaunched.id}" data-go-view="detail" data-go-run="${lastLaunched.id}">
      <span class="run-id">#${lastLaunched.id}</span> ${esc(lastLaunched.name)}</a>.
      <button type="button" class="btn btn-small" id="launch-save-preset" data-testid="launch-save-preset">Save as my preset</button>`;
  }
}

async function submit(e) {
  e.preventDefault();
  if (!source || table.status.error) return;
  clearErrors();
  busy = true;
  updateSubmit();
  try {
    const run = await post('/runs', formBody());
    const more = run.run_ids?.length > 1 ? ` and ${run.run_ids.length - 1} more seeds` : '';
    toast(`Launched #${run.id} (${run.name})${more}${run.queue_position ? `, ${ordinal(run.queue_position)} in queue` : ''}.`);
    store.launched(run);
    lastLaunched = run;
    renderLast();
    setState({ view: 'runs', from: null }, { push: true });
  } catch (err) {
    showErrors(err);
  } finally {
    busy = false;
    updateSubmit();
  }
}

async function launchChronology() {
  const dataset = shownDataset;
  const list = presetsOf(dataset);
  if (!list.length || !confirm(`Queue all ${list.length} ${dataset} presets in the notes' order, each with its defaults?`)) return;
  const button = $('launch-chronology');
  button.disabled = true;
  let queued = 0;
  try {
    for (const p of list) {
      await post('/runs', { model: p.id });
      queued += 1;
    }
    toast(`Queued ${queued} ${dataset} runs in the notes' order.`);
    setState({ view: 'runs', dataset, status: '', q: '', sort: 'id', order: 'desc', offset: 0 }, { push: true });
  } catch (err) {
    toast(`Queued ${queued} of ${list.length}; then: ${err.message}`, 'error', 10000);
  } finally {
    button.disabled = false;
  }
}

// The preset a run started from; a saved preset deleted since is rebuilt from the run.
function presetOf(run) {
  return zoo.find((p) => p.id === run.model) || {
    id: run.model, dataset: run.dataset, params: run.params, layers: run.config?.layers || [],
    defaults: run.config || {}, description: '', source: 'user', missing: true,
  };
}

export async function show(state) {
  const seq = ++showSeq;
  let run = null;
  try {
    [zoo, options, saved] = await Promise.all([loadZoo(), loadOptions(), api('/presets')]);
    if (state.from) run = await store.fetchRun(state.from);
  } catch (e) {
    if (seq !== showSeq) return;
    const gone = e instanceof ApiError && e.status === 404;
    source = null;
    renderForm();
    $('launch-fields').innerHTML = `<p class="form-error">${gone ? `Run #${state.from} does not exist: pick a preset instead.`
      : `Could not load the zoo: ${esc(e.message)}`}</p>`;
    return;
  }
  if (seq !== showSeq) return;
  const datasets = datasetsOf();
  const base = run ? presetOf(run) : zoo.find((p) => p.id === state.preset);
  const dataset = run ? base.dataset : datasets.includes(state.ds) ? state.ds : (base?.dataset || datasets[0]);
  const preset = base && base.dataset === dataset ? base : null;
  shownDataset = dataset;
  renderDatasets(dataset);
  renderPresets(dataset, preset?.id);
  const key = run ? `run:${run.id}` : preset ? `preset:${preset.id}` : '';
  if (key !== source?.key || !$('launch-fields').children.length) {
    source = preset ? { key, preset, run } : null;
    renderForm();
    if (run && NARROW.matches) $('launch-form').scrollIntoView();
  }
  renderLast();
}

async function onPresetAction(e) {
  const rename = e.target.closest('button[data-rename]');
  const remove = e.target.closest('button[data-delete]');
  const preset = saved.find((p) => p.id === (rename || remove)?.dataset[rename ? 'rename' : 'delete']);
  if (!preset) return;
  if (rename ? await renamePreset(preset) : await deletePreset(preset)) {
    const state = readState();
    if (remove && state.preset === preset.id) setState({ preset: '' });
    else show(state);
  }
}

export function init() {
  table = new NetworkTable($('launch-network-table'), {
    editable: true,
    onChange: () => { markChanges(); updateSubmit(); },
  });
  $('launch-dataset').addEventListener('click', (e) => {
    const b = e.target.closest('button[data-dataset]');
    if (b) setState({ ds: b.dataset.dataset, preset: '', from: null });
  });
  $('preset-list').addEventListener('click', (e) => {
    if (e.target.closest('button[data-rename], button[data-delete]')) {
      onPresetAction(e);
      return;
    }
    const b = e.target.closest('button[data-preset]');
    if (!b) return;
    setState({ preset: b.dataset.preset, from: null });
    if (NARROW.matches) $('launch-form').scrollIntoView({ behavior: 'smooth' });
  });
  $('launch-fields').addEventListener('input', markChanges);
  $('launch-fields').addEventListener('change', (e) => {
    if (e.target.id === 'f-dataset') table.setDataset(JSON.parse(e.target.value));
    markChanges();
  });
  $('launch-form').addEventListener('submit', submit);
  $('launch-reset').addEventListener('click', () => renderForm());
  $('launch-chronology').addEventListener('click', launchChronology);
  $('launch-last').addEventListener('click', async (e) => {
    if (!e.target.closest('#launch-save-preset') || !lastLaunched) return;
    if (await savePreset(lastLaunched)) show(readState());
  });
}
