// The Lineage view: a dataset's runs as a tree by parent (GET /lineage). The notes' chronology
// is the trunk: its presets one under the other, each step labelled with what the next
// experiment changed; a run hangs from the run it was derived from, or from the preset it
// started from. Every edge says what changed and what it did (Δ best accuracy, Δ parameters,
// Δ time). Runs that differ only by seed fold into one node (mean ± std), so a hundred runs
// stay readable; any node with children folds. The tree is laid out by depth (one row per
// node, indented), its lines drawn in SVG behind the rows. A click on a node opens the run;
// ticked runs open in Compare.

import { api, loadOptions } from './api.js';
import { esc, int, isNum, pct, seconds } from './format.js';
import { setState } from './state.js';
import * as store from './store.js';
import { debounce } from './widgets.js';

const LIMIT = 300; // the newest runs drawn, with their ancestors
const $ = (id) => document.getElementById(id);
const keyOf = (ref) => `${ref.kind}:${ref.id}`;

let data = null;
let dataset = '';
let visible = false;
let loadSeq = 0;
const folded = new Set(); // keys of folded nodes
const expanded = new Set(); // keys of seed groups shown run by run
const selected = new Set(); // run ids ticked for Compare
const scheduleLoad = debounce(() => load(), 800);

// --- what an edge says ----------------------------------------------------------------------

function signed(n, text) {
  return n > 0 ? `+${text}` : n < 0 ? `−${text}` : '±0';
}

// Δ best accuracy (points), Δ parameters, Δ time, each only when known; `vsNotes`: the
// accuracy is compared with the notes' figure (an edge from a preset).
export function deltaHtml(delta, { vsNotes = false } = {}) {
  const parts = [];
  const acc = delta?.best_test_acc;
  if (isNum(acc)) {
    const tone = acc > 0 ? 'up' : acc < 0 ? 'down' : '';
    parts.push(`<span class="delta-acc ${tone}" data-delta="acc" data-value="${acc}">Δ acc${vsNotes ? ' vs notes' : ''}
      ${signed(acc, `${Math.abs(acc * 100).toFixed(2)} pts`)}</span>`);
  }
  if (isNum(delta?.params)) parts.push(`<span data-delta="params">Δ params ${signed(delta.params, int(Math.abs(delta.params)))}</span>`);
  if (isNum(delta?.total_seconds)) {
    parts.push(`<span data-delta="time">Δ time ${signed(delta.total_seconds, seconds(Math.abs(delta.total_seconds)))}</span>`);
  }
  return parts.join(' · ');
}

function mean(xs) {
  const ok = xs.filter(isNum);
  return ok.length ? ok.reduce((a, b) => a + b, 0) / ok.length : null;
}

function std(xs) {
  const ok = xs.filter(isNum);
  if (ok.length < 2) return null;
  const m = mean(ok);
  return Math.sqrt(ok.reduce((a, x) => a + (x - m) ** 2, 0) / (ok.length - 1));
}

// --- the tree ---------------------------------------------------------------------------------

// {roots, children(key), edge(key)}: trunk presets first, in the notes' order, then the user's
// presets that runs started from, then runs whose source is not shown.
function buildTree({ nodes, edges }) {
  const byKey = new Map(nodes.map((n) => [keyOf(n), n]));
  const edgeTo = new Map();
  const children = new Map();
  for (const e of edges) {
    edgeTo.set(keyOf(e.target), e);
    if (e.source.kind === 'preset' && e.target.kind === 'preset') continue; // the trunk
    const from = keyOf(e.source);
    if (!children.has(from)) children.set(from, []);
    children.get(from).push(byKey.get(keyOf(e.target)));
  }
  const orphans = nodes.filter((n) => n.kind === 'run' && !byKey.has(keyOf(edgeTo.get(keyOf(n))?.source || {})));
  return {
    trunk: nodes.filter((n) => n.kind === 'preset' && n.source !== 'user'),
    roots: [...nodes.filter((n) => n.kind === 'preset' && n.source === 'user'), ...orphans],
    children: (key) => children.get(key) || [],
    edge: (key) => edgeTo.get(key),
  };
}

// The runs under one node, runs of one group (same config but the seed) folded together.
function items(tree, parentKeys) {
  const runs = parentKeys.flatMap((k) => tree.children(k)).sort((a, b) => a.id - b.id);
  const byGroup = new Map();
  for (const run of runs) {
    const g = run.group_key || `run:${run.id}`;
    if (!byGroup.has(g)) byGroup.set(g, []);
    byGroup.get(g).push(run);
  }
  return [...byGroup.values()].map((members) => (members.length === 1
    ? { kind: 'run', key: keyOf(members[0]), run: members[0] }
    : { kind: 'group', key: `group:${members[0].id}`, runs: members }));
}

// One row per visible node, in reading order: {kind, key, depth, parent (row index), ...}.
function flatten(tree) {
  const rows = [];
  const add = (row) => { rows.push(row); return rows.length - 1; };
  const visit = (item, depth, parent) => {
    const keys = item.kind === 'group' ? item.runs.map(keyOf) : [item.key];
    const below = items(tree, keys);
    const at = add({ ...item, depth, parent, edge: tree.edge(keys[0]), folds: below.length > 0 || item.kind === 'group' });
    if (item.kind === 'group' && expanded.has(item.key)) {
      for (const run of item.runs) add({ kind: 'member', key: keyOf(run), run, depth: depth + 1, parent: at });
    }
    if (!folded.has(item.key)) for (const child of below) visit(child, depth + 1, at);
  };
  let previous = null;
  for (const preset of tree.trunk) {
    const key = keyOf(preset);
    const below = items(tree, [key]);
    const at = add({ kind: 'preset', key, preset, depth: 0, parent: null, trunk: previous, edge: tree.edge(key), folds: below.length > 0 });
    previous = at;
    if (!folded.has(key)) for (const child of below) visit(child, 1, at);
  }
  for (const root of tree.roots) {
    const key = keyOf(root);
    if (root.kind === 'preset') {
      const below = items(tree, [key]);
      const at = add({ kind: 'preset', key, preset: root, depth: 0, parent: null, folds: below.length > 0 });
      if (!folded.has(key)) for (const child of below) visit(child, 1, at);
    } else visit({ kind: 'run', key, run: root }, 0, null);
  }
  return rows;
}

// --- drawing --------------------------------------------------------------------------------

function check(ids, label) {
  const on = ids.every((id) => selected.has(id));
  return `<input type="checkbox" class="lin-select" data-runs="${ids.join(',')}" ${on ? 'checked' : ''}
    aria-label="${esc(label)}" data-testid="lineage-select-${ids[0]}">`;
}

function foldButton(row) {
  if (!row.folds) return '<span class="lin-fold-space"></span>';
  const open = row.kind === 'group' ? expanded.has(row.key) : !folded.has(row.key);
  const what = row.kind === 'group' ? `${row.runs.length} seeds` : 'runs below';
  return `<button type="button" class="lin-fold" data-fold="${esc(row.key)}" aria-expanded="${open}"
    aria-label="${open ? 'Fold' : 'Unfold'} ${what}">${open ? '▾' : '▸'}</button>`;
}

const runLink = (run) => `<a class="lin-run" href="#view=detail&run=${run.id}" data-go-view="detail" data-go-run="${run.id}"
  title="${esc(run.name)}">#${run.id}</a>`;

function changeHtml(edge) {
  if (!edge) return '';
  const from = edge.source.kind === 'run' ? `from #${edge.source.id}: ` : '';
  return `<span class="lin-change" data-testid="lineage-change">${esc(from)}${esc(edge.label)}</span>
    <span class="lin-delta">${deltaHtml(edge.delta, { vsNotes: edge.source.kind === 'preset' })}</span>`;
}

function rowHtml(row) {
  const pad = `style="--depth:${row.depth}"`;
  if (row.kind === 'preset') {
    const p = row.preset;
    const notes = p.notes_acc != null ? `notes ${pct(p.notes_acc)}` : p.source === 'user' ? 'your preset' : 'notes: not recorded';
    const step = row.edge ? `<span class="lin-step">the notes' step from ${esc(row.edge.source.id)}: ${esc(row.edge.label)}
      <span class="lin-delta">${deltaHtml(row.edge.delta)}</span></span>` : '';
    return `<div class="lin-row lin-preset${row.trunk !== undefined ? ' trunk' : ''}" ${pad} data-key="${esc(row.key)}"
        data-testid="lineage-preset-${esc(p.id)}" data-depth="0">
      <span class="lin-check"></span>${foldButton(row)}<span class="lin-dot preset"></span>
      <span class="lin-body"><a href="#view=launch&ds=${esc(p.dataset)}&preset=${esc(p.id)}"><code>${esc(p.id)}</code></a>
      <span class="muted">${esc(p.description || '')} · ${int(p.params)} params · ${esc(notes)}</span> ${step}</span></div>`;
  }
  const parent = row.parent === null ? '' : ` data-parent="${esc(rowsShown[row.parent].key)}"`;
  if (row.kind === 'group') {
    const accs = row.runs.map((r) => r.best_test_acc);
    const m = mean(accs);
    const s = std(accs);
    const deltas = row.runs.map((r) => data.edgeOf(keyOf(r))?.delta || {});
    const delta = Object.fromEntries(['best_test_acc', 'params', 'total_seconds'].map((k) => [k, mean(deltas.map((d) => d[k]))]));
    const edge = row.edge && { ...row.edge, delta };
    return `<div class="lin-row lin-group" ${pad} data-key="${esc(row.key)}"${parent} data-depth="${row.depth}"
        data-testid="lineage-group-${row.runs[0].id}" data-runs="${row.runs.map((r) => r.id).join(',')}">
      <span class="lin-check">${check(row.runs.map((r) => r.id), `Select the ${row.runs.length} seeds for Compare`)}</span>
      ${foldButton(row)}<span class="lin-dot group"></span>
      <span class="lin-body"><span class="lin-seeds">${row.runs.length} seeds</span> ${row.runs.map(runLink).join(' ')}
      <span class="lin-acc" title="mean ± std of best test accuracy over the finished seeds">${m === null ? '—'
    : `${pct(m)}${s === null ? '' : ` ± ${(s * 100).toFixed(2)}`}`}</span> ${changeHtml(edge)}</span></div>`;
  }
  const run = row.run;
  const seed = row.kind === 'member' ? `<span class="muted">seed ${esc(run.seed)}</span>` : '';
  return `<div class="lin-row lin-${row.kind}" ${pad} data-key="${esc(row.key)}"${parent} data-depth="${row.depth}"
      data-testid="lineage-run-${run.id}" data-run="${run.id}">
    <span class="lin-check">${check([run.id], `Select run #${run.id} for Compare`)}</span>
    ${row.kind === 'member' ? '<span class="lin-fold-space"></span>' : foldButton(row)}
    <span class="lin-dot status-${esc(run.status)}" title="${esc(run.status)}"></span>
    <span class="lin-body">${runLink(run)} ${seed}
    <span class="lin-acc" data-testid="lineage-acc-${run.id}">${pct(run.best_test_acc)}</span>
    ${row.kind === 'member' ? '' : changeHtml(row.edge)}</span></div>`;
}

let rowsShown = [];

function render() {
  const box = $('lineage-rows');
  if (!data) return;
  rowsShown = flatten(data.tree);
  box.innerHTML = rowsShown.map(rowHtml).join('');
  $('lineage-empty').hidden = rowsShown.length > 0;
  const runs = data.nodes.filter((n) => n.kind === 'run').length;
  $('lineage-summary').textContent = `${int(runs)} ${runs === 1 ? 'run' : 'runs'} of ${dataset}`
    + `${runs >= data.limit ? ` (the newest ${data.limit} and their ancestors)` : ''}; seeds of one configuration fold into one node.`;
  renderSelection();
  drawLines();
}

// The tree's lines, from each row's dot to its children's; measured after layout, so rows may
// wrap at any width.
function drawLines() {
  const svg = $('lineage-svg');
  const box = $('lineage-tree').getBoundingClientRect();
  const dots = [...$('lineage-rows').querySelectorAll('.lin-dot')].map((d) => {
    const r = d.getBoundingClientRect();
    return { x: r.left - box.left + r.width / 2, y: r.top - box.top + r.height / 2 };
  });
  const paths = [];
  rowsShown.forEach((row, i) => {
    const to = dots[i];
    if (row.trunk !== undefined && row.trunk !== null) {
      const from = dots[row.trunk];
      paths.push(`<path class="trunk" d="M${from.x},${from.y} V${to.y}"/>`);
    }
    if (row.parent !== null && row.parent !== undefined) {
      const from = dots[row.parent];
      paths.push(`<path d="M${from.x},${from.y} V${to.y} H${to.x}"/>`);
    }
  });
  svg.setAttribute('width', box.width);
  svg.setAttribute('height', box.height);
  svg.innerHTML = paths.join('');
}

function renderSelection() {
  const ids = [...selected];
  const button = $('lineage-compare');
  button.disabled = ids.length < 2;
  button.textContent = ids.length >= 2 ? `Compare ${ids.map((id) => `#${id}`).join(', ')}` : 'Tick two runs to compare';
  $('lineage-clear').hidden = ids.length === 0;
}

function renderDatasets(list) {
  $('lineage-dataset').innerHTML = list.map((d) => `<button type="button" role="tab" data-dataset="${esc(d)}"
    data-testid="lineage-dataset-${esc(d)}" aria-selected="${d === dataset}">${esc(d)}</button>`).join('');
}

async function load() {
  if (!visible) return;
  const seq = ++loadSeq;
  try {
    const answer = await api(`/lineage?dataset=${encodeURIComponent(dataset)}&limit=${LIMIT}`);
    if (seq !== loadSeq) return;
    const tree = buildTree(answer);
    data = { ...answer, tree, edgeOf: tree.edge, limit: LIMIT };
    $('lineage-error').hidden = true;
  } catch (e) {
    if (seq !== loadSeq) return;
    $('lineage-error').hidden = false;
    $('lineage-error').textContent = `Could not load the lineage: ${e.message}`;
    return;
  }
  render();
  $('lineage-tree').dataset.loaded = String(seq);
}

export async function show(state) {
  visible = true;
  const options = await loadOptions().catch(() => ({}));
  const list = options.datasets || ['mnist', 'cifar10'];
  const next = list.includes(state.lds) ? state.lds : list[0];
  const changed = next !== dataset;
  dataset = next;
  renderDatasets(list);
  if (changed) data = null;
  load();
}

export function hide() {
  visible = false;
}

export function init() {
  $('lineage-dataset').addEventListener('click', (e) => {
    const b = e.target.closest('button[data-dataset]');
    if (b) setState({ lds: b.dataset.dataset });
  });
  $('lineage-rows').addEventListener('click', (e) => {
    const fold = e.target.closest('button[data-fold]');
    if (!fold) return;
    const key = fold.dataset.fold;
    const set = key.startsWith('group:') ? expanded : folded;
    if (set.has(key)) set.delete(key); else set.add(key);
    render();
  });
  $('lineage-rows').addEventListener('change', (e) => {
    const box = e.target.closest('.lin-select');
    if (!box) return;
    for (const id of box.dataset.runs.split(',').map(Number)) {
      if (box.checked) selected.add(id); else selected.delete(id);
    }
    renderSelection();
  });
  $('lineage-compare').addEventListener('click', () => {
    setState({ view: 'compare', sel: [...selected] }, { push: true });
  });
  $('lineage-clear').addEventListener('click', () => {
    selected.clear();
    render();
  });
  new ResizeObserver(() => { if (visible && data) drawLines(); }).observe($('lineage-tree'));
  // A new run, a run that ended or one deleted changes the tree.
  store.subscribe(({ type }) => {
    if (visible && (type === 'status' || type === 'launched' || type === 'deleted')) scheduleLoad();
  });
}
