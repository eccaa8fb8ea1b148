// The Launch view: pick a dataset, a preset of the zoo, adjust its hyper-parameters (prefilled
// with the preset's defaults), launch. The server validates; its 422 messages are shown next
// to the fields they name. Also queues a dataset's whole chronology in the notes' order.

import { ApiError, loadOptions, loadZoo, post } from './api.js';
import { esc, int, pct, seconds } from './format.js';
import { setState } from './state.js';
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
const KNOWN = new Set(GROUPS.flatMap(([, fields]) => fields.map((f) => f.key)));

let zoo = [];
let options = {};
let preset = null;
let fields = []; // the fields of the form shown, with their defaults
let shownDataset = '';

const $ = (id) => document.getElementById(id);

function datasetsOf() {
  const fromOptions = (options.datasets || []).map((d) => (typeof d === 'string' ? d : d.id));
  const fromZoo = [...new Set(zoo.map((p) => p.dataset))];
  return fromOptions.length ? fromOptions.filter((d) => fromZoo.includes(d)).concat(fromZoo.filter((d) => !fromOptions.includes(d))) : fromZoo;
}

function presetsOf(dataset) {
  return zoo.filter((p) => p.dataset === dataset).sort((a, b) => (a.order ?? 0) - (b.order ?? 0));
}

function notesText(p) {
  const parts = [];
  if (p.notes_acc != null) parts.push(pct(p.notes_acc));
  if (p.notes_seconds != null) parts.push(seconds(p.notes_seconds));
  return parts.length ? `notes: ${parts.join(' · ')}` : 'notes: not recorded';
}

function renderDatasets(current) {
  const box = $('launch-dataset');
  box.innerHTML = datasetsOf().map((d) => `<button type="button" role="tab" data-dataset="${esc(d)}"
    data-testid="dataset-${esc(d)}" aria-selected="${d === current}">${esc(d)}
    <span class="count">${presetsOf(d).length}</span></button>`).join('');
}

function renderPresets(dataset, selected) {
  const list = presetsOf(dataset);
  $('preset-list').innerHTML = list.map((p, i) => `
    <li><button type="button" class="preset" data-preset="${esc(p.id)}" data-testid="preset-${esc(p.id)}"
        aria-pressed="${p.id === selected}">
      <span class="preset-order">${i + 1}</span>
      <span class="preset-main"><code>${esc(p.id)}</code><span class="preset-desc">${esc(p.description || '')}</span></span>
      <span class="preset-figs"><span>${int(p.params)} params</span><span class="notes">${esc(notesText(p))}</span></span>
    </button></li>`).join('');
  $('launch-chronology').textContent = `Launch the whole chronology (${list.length})`;
  $('launch-chronology').disabled = list.length === 0;
  $('launch-chronology-hint').textContent = `Queues every ${dataset} preset in the notes' order, each with its defaults.`;
}

// Every field of POST /runs, plus any default the preset has that this form does not know.
function fieldSpecs(defaults) {
  const groups = GROUPS.map(([title, fs]) => [title, [...fs]]);
  const extra = Object.keys(defaults).filter((k) => !KNOWN.has(k) && k !== 'model').map((k) => {
    const v = defaults[k];
    const type = typeof v === 'boolean' ? 'bool' : typeof v === 'number' ? (Number.isInteger(v) ? 'int' : 'float') : 'json';
    return { key: k, label: k.replace(/_/g, ' '), type };
  });
  if (extra.length) groups.push(['Other', extra]);
  return groups.filter(([, fs]) => fs.length);
}

function choices(field, def) {
  const list = (options[field.options] || []).map((o) => (o !== null && typeof o === 'object' ? (o.id ?? o.name) : o));
  const known = def === undefined || list.some((o) => JSON.stringify(o) === JSON.stringify(def));
  return known ? list : [def, ...list];
}

function inputHtml(field, def) {
  const id = `f-${field.key}`;
  const common = `id="${id}" name="${esc(field.key)}" data-testid="field-${esc(field.key)}" aria-describedby="err-${esc(field.key)}"`;
  if (field.type === 'select') {
    return `<select ${common}>${choices(field, def).map((o) => `<option value="${esc(JSON.stringify(o))}"
      ${JSON.stringify(o) === JSON.stringify(def ?? null) ? 'selected' : ''}>${esc(o === null ? 'none' : o)}</option>`).join('')}</select>`;
  }
  if (field.type === 'bool') return `<input type="checkbox" ${common} ${def ? 'checked' : ''}>`;
  const mode = field.type === 'int' ? 'numeric' : field.type === 'float' ? 'decimal' : 'text';
  const shown = def === null || def === undefined ? '' : field.type === 'json' ? JSON.stringify(def) : String(def);
  const range = field.limit && options.limits?.[field.limit];
  const placeholder = field.placeholder || (range ? `${range[0]}–${range[1]}` : '');
  return `<input type="text" inputmode="${mode}" autocomplete="off" ${common} value="${esc(shown)}"
    placeholder="${esc(placeholder)}">`;
}

function renderForm() {
  const box = $('launch-fields');
  if (!preset) {
    box.innerHTML = '<p class="muted">Pick a preset of the zoo.</p>';
    $('launch-submit').disabled = true;
    $('launch-layers').hidden = true;
    return;
  }
  const defaults = { name: preset.id, dataset: preset.dataset, ...(preset.defaults || {}) };
  const groups = fieldSpecs(defaults);
  fields = groups.flatMap(([, fs]) => fs.map((f) => ({ ...f, def: defaults[f.key] })));
  box.innerHTML = groups.map(([title, fs]) => `
    <fieldset><legend>${esc(title)}</legend><div class="field-grid">
    ${fs.map((f) => `<div class="field" data-field="${esc(f.key)}">
      <label for="f-${esc(f.key)}">${esc(f.label)}${f.hint ? ` <span class="hint">(${esc(f.hint)})</span>` : ''}</label>
      ${inputHtml(f, defaults[f.key])}
      <div class="field-error" id="err-${esc(f.key)}" data-testid="error-${esc(f.key)}" hidden></div>
    </div>`).join('')}
    </div></fieldset>`).join('');
  $('launch-preset-title').innerHTML = `<code>${esc(preset.id)}</code>`;
  $('launch-preset-summary').textContent = `${preset.description || ''} — ${int(preset.params)} parameters`
    + `${preset.notes_params ? ` (notes: ${preset.notes_params})` : ''}; ${notesText(preset)}.`;
  $('launch-layers-list').innerHTML = (preset.layers || []).map((l) => `<li><code>${esc(l)}</code></li>`).join('');
  $('launch-layers').hidden = !(preset.layers || []).length;
  $('launch-submit').disabled = false;
  $('launch-submit').textContent = `Launch ${preset.id}`;
  clearErrors();
}

// The request body: only what differs from the preset's defaults (the rest the server fills in).
// A number field holding text is sent as text, so the server's message names the problem.
function formBody() {
  const body = { model: preset.id };
  for (const f of fields) {
    const input = $(`f-${f.key}`);
    let v;
    if (f.type === 'select') v = JSON.parse(input.value);
    else if (f.type === 'bool') v = input.checked;
    else {
      const raw = input.value.trim();
      if (raw === '') continue; // the server fills in the preset's default
      if (f.type === 'int' || f.type === 'float') v = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(raw) ? Number(raw) : raw;
      else if (f.type === 'json') { try { v = JSON.parse(raw); } catch { v = raw; } } else v = raw;
    }
    if (JSON.stringify(v) !== JSON.stringify(f.def ?? null)) body[f.key] = v;
  }
  return body;
}

function clearErrors() {
  for (const el of document.querySelectorAll('#launch-form .field-error')) { el.hidden = true; el.textContent = ''; }
  for (const el of document.querySelectorAll('#launch-form [aria-invalid]')) el.removeAttribute('aria-invalid');
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
    input.setAttribute('aria-invalid', 'true');
    first ??= input;
  }
  const box = $('launch-error');
  box.innerHTML = `<strong>The server refused this run${error.status ? ` (${error.status})` : ''}:</strong><ul>${
    items.map(({ field, msg }) => `<li>${field ? `<code>${esc(field)}</code>: ` : ''}${esc(msg)}</li>`).join('')}</ul>`;
  box.hidden = false;
  (first || box).focus?.();
}

async function submit(e) {
  e.preventDefault();
  if (!preset) return;
  clearErrors();
  const button = $('launch-submit');
  button.disabled = true;
  try {
    const run = await post('/runs', formBody());
    toast(`Launched #${run.id} (${run.name})${run.queue_position ? `, ${run.queue_position} in queue` : ''}.`);
    store.launched(run);
    setState({ view: 'runs' }, { push: true });
  } catch (err) {
    showErrors(err);
  } finally {
    button.disabled = false;
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

export async function show(state) {
  try {
    [zoo, options] = await Promise.all([loadZoo(), loadOptions()]);
  } catch (e) {
    $('launch-fields').innerHTML = `<p class="form-error">Could not load the zoo: ${esc(e.message)}</p>`;
    return;
  }
  const datasets = datasetsOf();
  const dataset = datasets.includes(state.ds) ? state.ds : (zoo.find((p) => p.id === state.preset)?.dataset || datasets[0]);
  const next = zoo.find((p) => p.id === state.preset && p.dataset === dataset) || null;
  shownDataset = dataset;
  renderDatasets(dataset);
  renderPresets(dataset, next?.id);
  if (next !== preset || !$('launch-fields').children.length) {
    preset = next;
    renderForm();
  }
}

export function init() {
  $('launch-dataset').addEventListener('click', (e) => {
    const b = e.target.closest('button[data-dataset]');
    if (b) setState({ ds: b.dataset.dataset, preset: '' });
  });
  $('preset-list').addEventListener('click', (e) => {
    const b = e.target.closest('button[data-preset]');
    if (!b) return;
    setState({ preset: b.dataset.preset });
    // One column in narrow windows: bring the form into view.
    if (window.matchMedia('(max-width: 1000px)').matches) $('launch-form').scrollIntoView({ behavior: 'smooth' });
  });
  $('launch-form').addEventListener('submit', submit);
  $('launch-reset').addEventListener('click', () => renderForm());
  $('launch-chronology').addEventListener('click', launchChronology);
}
