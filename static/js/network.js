// The network table: a run's layers, one row each, with the output shape and parameters the
// server's shape checker gives (POST /architectures/check; the page computes no shape itself).
// Editable in the launch form — insert, delete, duplicate and move rows, edit a layer as you
// type (checked once typing pauses), the checker's refusal at its row — and read-only in the
// run detail. Rows that differ from a base network (the run the form started from, or the
// preset) are marked, and the layers it lost are listed.
//
//   const table = new NetworkTable(element, { editable: true, onChange })
//   table.set(layers, dataset, { base, baseParams, baseName })   show a network
//   table.setDataset(dataset)          check it on another dataset's images
//   table.layers                       the layers as edited
//   table.status                       { pending, params, error, notice }: error is the checker's
//                                      refusal {index (0-based, or null for the whole network),
//                                      message}; notice says why nothing could be checked
//   onChange(status) after each edit and each answer

import { api, ApiError } from './api.js';
import { esc, int } from './format.js';
import { debounce } from './widgets.js';

const CHECK_DELAY_MS = 250;
const norm = (layer) => String(layer).trim().split(/\s+/).join(' ');
const shapeText = (shape) => (shape ? shape.join('×') : '—');
const signed = (n) => (n > 0 ? `+${int(n)}` : n < 0 ? `−${int(-n)}` : '±0');

// Which layers of `layers` differ from `base`: a longest common subsequence pairs the equal
// ones; between two pairs, rows of both sides pair up as changed, the rest were inserted or
// removed. Returns {marks: per row null | {kind: 'changed', was} | {kind: 'inserted'}, removed}.
export function layerDiff(base, layers) {
  const a = base.map(norm);
  const b = layers.map(norm);
  const lcs = Array.from({ length: a.length + 1 }, () => new Array(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i -= 1) {
    for (let j = b.length - 1; j >= 0; j -= 1) {
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const pairs = [];
  for (let i = 0, j = 0; i < a.length && j < b.length;) {
    if (a[i] === b[j]) { pairs.push([i, j]); i += 1; j += 1; } else if (lcs[i + 1][j] >= lcs[i][j + 1]) i += 1; else j += 1;
  }
  pairs.push([a.length, b.length]);
  const marks = new Array(b.length).fill(null);
  const removed = [];
  let i = 0;
  let j = 0;
  for (const [pi, pj] of pairs) {
    for (; i < pi && j < pj; i += 1, j += 1) marks[j] = { kind: 'changed', was: base[i] };
    for (; i < pi; i += 1) removed.push({ at: i + 1, layer: base[i] });
    for (; j < pj; j += 1) marks[j] = { kind: 'inserted' };
    i = pi + 1;
    j = pj + 1;
  }
  return { marks, removed };
}

// The checker's refusal in a 422: where (the layer's index in the body) and its sentence.
function refusal(error) {
  if (!(error instanceof ApiError) || error.status !== 422 || !Array.isArray(error.detail)) return null;
  const d = error.detail.find((x) => Array.isArray(x.loc) && x.loc[1] === 'layers') || error.detail[0];
  const index = Array.isArray(d?.loc) && d.loc[1] === 'layers' && Number.isInteger(d.loc[2]) ? d.loc[2] : null;
  return { index, message: d?.msg || error.message };
}

const ACTIONS = [
  ['up', '↑', 'Move layer N up'], ['down', '↓', 'Move layer N down'], ['dup', '❐', 'Duplicate layer N'],
  ['insert', '+', 'Insert a layer after layer N'], ['delete', '×', 'Delete layer N'],
];

export class NetworkTable {
  constructor(root, { editable = false, onChange = () => {} } = {}) {
    this.root = root;
    this.editable = editable;
    this.onChange = onChange;
    this.layers = [];
    this.dataset = '';
    this.base = null;
    this.baseParams = null;
    this.baseName = '';
    this.answer = null; // the checker's table for the layers as they are, or null
    this.input = null; // the dataset's image shape, once checked
    this.known = new Map(); // dataset + layers up to a row -> that row's {shape, params}
    this.seq = 0;
    this.status = { pending: false, params: null, error: null, notice: '' };
    this.scheduleCheck = debounce(() => this.check(), CHECK_DELAY_MS);
    root.classList.add('net');
    if (editable) {
      root.addEventListener('input', (e) => this.onInput(e));
      root.addEventListener('click', (e) => this.onClick(e));
      root.addEventListener('keydown', (e) => {
        // Enter in a layer adds the next one; it never submits the form around the table.
        if (e.key === 'Enter' && e.target.matches('.layer-input')) {
          e.preventDefault();
          this.edit('insert', Number(e.target.closest('tr').dataset.row));
        }
      });
    }
  }

  set(layers, dataset, { base = null, baseParams = null, baseName = '' } = {}) {
    this.layers = [...layers];
    this.dataset = dataset;
    this.base = base ? [...base] : null;
    this.baseParams = baseParams;
    this.baseName = baseName;
    this.answer = null;
    this.status = { pending: true, params: null, error: null, notice: '' };
    this.render();
    this.check();
  }

  setDataset(dataset) {
    if (dataset === this.dataset) return;
    this.dataset = dataset;
    this.check();
  }

  // --- editing ---------------------------------------------------------------------------

  onInput(e) {
    const input = e.target.closest('.layer-input');
    if (!input) return;
    this.layers[Number(input.closest('tr').dataset.row)] = input.value;
    this.answer = null;
    this.renderMarks();
    this.pending();
  }

  onClick(e) {
    const button = e.target.closest('button[data-op]');
    if (!button) return;
    const row = button.closest('tr[data-row]');
    this.edit(button.dataset.op, row ? Number(row.dataset.row) : this.layers.length - 1);
  }

  edit(op, i) {
    const layers = this.layers;
    let focus = i;
    if (op === 'up' && i > 0) { [layers[i - 1], layers[i]] = [layers[i], layers[i - 1]]; focus = i - 1; }
    else if (op === 'down' && i < layers.length - 1) { [layers[i], layers[i + 1]] = [layers[i + 1], layers[i]]; focus = i + 1; }
    else if (op === 'dup') { layers.splice(i + 1, 0, layers[i]); focus = i + 1; }
    else if (op === 'insert') { layers.splice(i + 1, 0, ''); focus = i + 1; }
    else if (op === 'delete') { layers.splice(i, 1); focus = Math.min(i, layers.length - 1); }
    else return;
    this.answer = null;
    this.render();
    const input = this.root.querySelector(`tr[data-row="${focus}"] .layer-input`);
    if (input) input.focus();
    this.pending();
  }

  pending() {
    this.status = { ...this.status, pending: true };
    this.onChange(this.status);
    this.scheduleCheck();
  }

  // --- checking --------------------------------------------------------------------------

  async check() {
    const seq = ++this.seq;
    const layers = [...this.layers];
    const dataset = this.dataset;
    this.status = { ...this.status, pending: true };
    let answer = null;
    let status;
    try {
      answer = await api('/architectures/check', { method: 'POST', body: { layers, dataset }, ask: false });
      status = { pending: false, params: answer.params, error: null, notice: '' };
    } catch (e) {
      const refused = refusal(e);
      if (refused) status = { pending: false, params: null, error: refused, notice: '' };
      else {
        const why = e instanceof ApiError && e.status === 401
          ? 'Shapes and parameters appear once the access token is given (the page asks for it at launch).'
          : `Could not check the network: ${e.message}`;
        status = { pending: false, params: null, error: null, notice: why };
      }
    }
    if (seq !== this.seq) return; // a newer edit is being checked
    this.answer = answer;
    this.input = answer?.input_shape ?? this.input;
    if (answer) {
      if (this.known.size > 5000) this.known.clear();
      answer.rows.forEach((row, k) => this.known.set(this.key(layers, k, dataset), row));
    }
    this.status = status;
    this.renderFigures();
    this.onChange(status);
  }

  key(layers, k, dataset = this.dataset) {
    return `${dataset}\n${layers.slice(0, k + 1).map(norm).join('\n')}`;
  }

  // --- drawing ---------------------------------------------------------------------------

  render() {
    const actions = (i) => ACTIONS.map(([op, glyph, label]) => {
      const text = label.replace('N', i + 1);
      const off = (op === 'up' && i === 0) || (op === 'down' && i === this.layers.length - 1);
      return `<button type="button" class="icon-btn" data-op="${op}" title="${text}" aria-label="${text}"
        data-testid="layer-${op}-${i + 1}"${off ? ' disabled' : ''}>${glyph}</button>`;
    }).join('');
    const rows = this.layers.map((layer, i) => `
      <tr data-row="${i}" data-testid="layer-row-${i + 1}">
        <td class="num idx">${i + 1}</td>
        <td class="layer-cell">${this.editable
    ? `<input type="text" class="layer-input" value="${esc(layer)}" data-testid="layer-${i + 1}"
            aria-label="Layer ${i + 1}" autocomplete="off" spellcheck="false" placeholder="e.g. bn1d 60">`
    : `<code>${esc(layer)}</code>`}
          <div class="layer-mark"></div>
          <div class="layer-error" data-testid="layer-error-${i + 1}" role="alert" hidden></div></td>
        <td class="shape" data-testid="shape-${i + 1}">—</td>
        <td class="num params" data-testid="params-${i + 1}">—</td>
        ${this.editable ? `<td class="row-actions">${actions(i)}</td>` : ''}
      </tr>`).join('');
    const cols = this.editable ? 5 : 4;
    this.root.innerHTML = `
      <table class="net-table">
        <thead><tr><th class="num">#</th><th>Layer</th><th>Output</th><th class="num">Params</th>
          ${this.editable ? '<th><span class="visually-hidden">Edit</span></th>' : ''}</tr></thead>
        <tbody>
          <tr class="input-row"><td></td><td class="muted">input image</td><td class="shape input-shape">—</td><td></td>
            ${this.editable ? '<td></td>' : ''}</tr>
          ${rows}
        </tbody>
        <tfoot>
          <tr><td></td><td>Total${this.editable ? ` <button type="button" class="btn btn-small add-layer" data-op="insert"
            data-testid="layer-add">+ Add a layer at the end</button>` : ''}</td><td></td>
            <td class="num total" data-testid="net-total">—</td>${this.editable ? '<td></td>' : ''}</tr>
          <tr class="net-removed" hidden><td></td><td colspan="${cols - 1}" data-testid="net-removed"></td></tr>
          <tr class="net-problem" hidden><td></td><td colspan="${cols - 1}" data-testid="net-problem"></td></tr>
        </tfoot>
      </table>`;
    this.renderMarks();
    this.renderFigures();
  }

  renderMarks() {
    const removedRow = this.root.querySelector('.net-removed');
    if (!this.base) {
      removedRow.hidden = true;
      return;
    }
    const { marks, removed } = layerDiff(this.base, this.layers);
    this.root.querySelectorAll('tr[data-row]').forEach((tr) => {
      const mark = marks[Number(tr.dataset.row)];
      tr.classList.toggle('changed', mark?.kind === 'changed');
      tr.classList.toggle('inserted', mark?.kind === 'inserted');
      tr.dataset.mark = mark?.kind || 'same';
      tr.querySelector('.layer-mark').innerHTML = !mark ? ''
        : mark.kind === 'changed' ? `was <code>${esc(mark.was)}</code>` : `new against ${esc(this.baseName)}`;
    });
    removedRow.hidden = removed.length === 0;
    removedRow.cells[1].innerHTML = `Removed against ${esc(this.baseName)}: ${removed
      .map((r) => `layer ${r.at} <code>${esc(r.layer)}</code>`).join(', ')}`;
  }

  renderFigures() {
    const { error, notice, params } = this.status;
    const layers = this.layers;
    this.root.querySelector('.input-shape').textContent = shapeText(this.input);
    this.root.querySelectorAll('tr[data-row]').forEach((tr) => {
      const i = Number(tr.dataset.row);
      const row = this.answer?.rows[i] ?? (error && (error.index === null || i < error.index)
        ? this.known.get(this.key(layers, i)) : null);
      tr.querySelector('.shape').textContent = shapeText(row?.shape);
      tr.querySelector('.params').textContent = row ? int(row.params) : '—';
      const here = error && error.index === i;
      const slot = tr.querySelector('.layer-error');
      slot.hidden = !here;
      slot.textContent = here ? error.message : '';
      tr.classList.toggle('refused', here);
      const input = tr.querySelector('.layer-input');
      if (input && here) input.setAttribute('aria-invalid', 'true');
      else input?.removeAttribute('aria-invalid');
    });
    const delta = params !== null && this.baseParams !== null && params !== this.baseParams
      ? ` <span class="delta">(${signed(params - this.baseParams)} against ${esc(this.baseName)})</span>` : '';
    this.root.querySelector('.total').innerHTML = params === null ? '—' : `${int(params)}${delta}`;
    const problem = this.root.querySelector('.net-problem');
    const text = error && (error.index === null || error.index >= layers.length) ? error.message : notice;
    problem.hidden = !text;
    problem.classList.toggle('bad', Boolean(error));
    problem.cells[1].textContent = text || '';
  }
}
