// The Compare view: selected runs (sel=) and groups of seeds (groups=) overlaid — each named by
// what tells it apart within the comparison and drawn in its own colour — with, for two groups or
// more, the verdict: is the difference of mean best accuracy real or within seed noise (Welch 95%
// CI, GET /groups/compare). Charts in compare_charts.js; context runs, time axis and the loss
// scale are chosen here and kept in the URL.

import { api, ApiError, loadZoo } from './api.js';
import { bestChart, curveCharts, scatterCharts } from './compare_charts.js';
import { forkLink } from './fork.js';
import { esc, int, pct, seconds, value } from './format.js';
import { labels } from './naming.js';
import { groupColor, runColor } from './plots.js';
import { readState, setState } from './state.js';
import * as store from './store.js';
import { debounce, statusBadge, toast } from './widgets.js';

const $ = (id) => document.getElementById(id);
let visible = false;
let loadSeq = 0;
// What the view shows: {sel, groups: Map key -> GET /groups/{key}, verdicts, contextIds, zoo, state}
let drawn = null;
const scheduleRender = debounce(() => { if (visible && drawn) render(); }, 700);
const scheduleGroups = debounce(() => { if (visible && drawn) refreshGroups(drawn).then(render, reportError); }, 1000);

// A selected run and its metrics into the store: its id, or null when it is not found.
const fetchRun = (id) => Promise.all([store.fetchRun(id), store.loadMetrics(id)]).then(() => id, notFound);
const fetchGroup = (key) => api(`/groups/${key}`).catch(notFound);

function notFound(e) {
  if (e instanceof ApiError && e.status === 404) return null;
  throw e;
}

// Finished runs of the same datasets: the candidates for context in the scatter plots.
async function fetchContext(datasets) {
  const pages = await Promise.all(datasets.map((dataset) => store.fetchPage({
    dataset, status: 'finished', sort: 'best_test_acc', order: 'desc', limit: 1000,
  })));
  return pages.flatMap((p) => p.items.map((run) => run.id));
}

// Each group after the first against the first: b minus a.
async function fetchVerdicts(keys) {
  const [base, ...rest] = keys;
  return Promise.all(rest.map((key) => api(`/groups/compare?a=${base}&b=${key}`)));
}

async function refreshGroups(view) {
  const keys = [...view.groups.keys()];
  const [groups, verdicts] = await Promise.all([Promise.all(keys.map(fetchGroup)), fetchVerdicts(keys)]);
  keys.forEach((key, i) => { if (groups[i]) view.groups.set(key, groups[i]); });
  view.verdicts = verdicts;
}

function items() {
  const runs = drawn.sel.map((id) => ({ id, run: store.get(id), metrics: store.metrics(id) }))
    .filter((r) => r.run && r.metrics)
    .map(({ id, run, metrics }) => ({
      kind: 'run', key: `run-${id}`, id, run, metrics, color: runColor(id), name: run.name, model: run.model,
      dataset: run.dataset, config: run.config, changes: run.changes, best: run.best_test_acc, params: run.params,
    }));
  const groups = [...drawn.groups.values()].map((g) => ({
    kind: 'group', key: g.key, group: g, color: groupColor(g.key), name: g.name, model: g.model, dataset: g.dataset,
    config: g.config, changes: g.changes, seeds: g.seeds, best: g.best_test_acc.mean, params: g.params,
  }));
  const all = [...runs, ...groups];
  labels(all).forEach((label, i) => {
    all[i].label = label;
    all[i].tag = all[i].kind === 'run' ? `#${all[i].id}` : label.split(' · ')[0];
  });
  return all;
}

// The context runs the scatter plots show besides the items: none; those trained on the same
// data (dataset and subsets: the default, so a hundred tiny subset runs don't stretch the axes
// of full runs); the runs of the compared groups; every finished run of the dataset; or a tag's.
function context(all, mode) {
  const chosen = new Set(all.filter((i) => i.kind === 'run').map((i) => i.id));
  const candidates = drawn.contextIds.map(store.get).filter((r) => r && !chosen.has(r.id));
  const data = (c) => JSON.stringify([c?.dataset, c?.train_subset ?? null, c?.test_subset ?? null]);
  const keys = new Set(all.map((i) => (i.kind === 'run' ? i.run.group_key : i.key)));
  const recipes = new Set(all.map((i) => data({ ...i.config, dataset: i.dataset })));
  if (mode === 'none') return [];
  if (mode === 'dataset') return candidates;
  if (mode === 'groups') return candidates.filter((r) => keys.has(r.group_key));
  if (mode.startsWith('tag:')) return candidates.filter((r) => r.tags?.includes(mode.slice(4)));
  return candidates.filter((r) => recipes.has(data({ ...r.config, dataset: r.dataset })));
}

// Tags offered as context, when runs carry them.
function contextOptions(mode) {
  const tags = [...new Set(drawn.contextIds.map(store.get).flatMap((r) => r?.tags || []))].sort();
  const select = $('compare-ctx');
  const wanted = ['none', 'data', 'groups', 'dataset', ...tags.map((t) => `tag:${t}`)];
  if ([...select.options].map((o) => o.value).join() !== wanted.join()) {
    for (const o of [...select.options]) if (o.value.startsWith('tag:')) o.remove();
    for (const t of tags) select.add(new Option(`runs tagged ${t}`, `tag:${t}`));
  }
  select.value = wanted.includes(mode) ? mode : 'data';
}

function legend(all) {
  $('compare-legend').innerHTML = all.map((item) => {
    const swatch = `<span class="swatch${item.kind === 'group' ? ' swatch-group' : ''}" style="background:${item.color}"></span>`;
    if (item.kind === 'run') {
      const { run } = item;
      const toGroup = run.group_key ? `<button type="button" class="btn btn-small" data-to-group="${run.id}"
        title="Compare the group of runs that differ from this one only in seed">its group</button>` : '';
      return `<li data-testid="compare-run-${run.id}" data-key="${item.key}">${swatch}
        <a href="#view=detail&run=${run.id}" data-go-view="detail" data-go-run="${run.id}">${esc(item.label)}</a>
        <code>${esc(run.model)}</code> ${statusBadge(run)}
        <span class="muted">${int(run.params)} params · best ${pct(run.best_test_acc)} · ${seconds(run.total_seconds)}</span>
        ${toGroup} ${forkLink(run)}
        <button type="button" class="icon-btn" data-remove-run="${run.id}" title="Remove from comparison" aria-label="Remove #${run.id}">×</button>
      </li>`;
    }
    const g = item.group;
    const best = g.best_test_acc;
    const pending = g.n - (g.statuses.finished || 0);
    return `<li data-testid="compare-group-${g.key}" data-key="${item.key}">${swatch}
      <span class="group-name" title="runs ${g.run_ids.map((id) => `#${id}`).join(', ')}">${esc(item.label)}</span>
      <code>${esc(g.model)}</code>
      <span class="muted">seeds ${esc(g.seeds.join(', '))} · best ${pct(best.mean)}${best.std != null ? ` ± ${pct(best.std)}` : ''}
        (n=${best.n})${pending ? ` · ${pending} not finished` : ''}</span>
      <button type="button" class="btn btn-small" data-to-runs="${g.key}" title="Show this group's runs one by one">its runs</button>
      <button type="button" class="icon-btn" data-remove-group="${g.key}" title="Remove from comparison" aria-label="Remove group ${esc(g.name)}">×</button>
    </li>`;
  }).join('');
}

const points = (x) => `${x >= 0 ? '+' : '−'}${Math.abs(x * 100).toFixed(2)}`;

// Two groups or more: each against the first, in words and numbers.
function verdicts(all) {
  const box = $('compare-verdicts');
  const groups = all.filter((i) => i.kind === 'group');
  box.hidden = groups.length === 0;
  if (!groups.length) return;
  if (groups.length === 1) {
    box.innerHTML = `<h3>Is the difference real?</h3><p class="muted">Add a second group of seeds to compare
      ${esc(groups[0].label)} with: the verdict needs two.</p>`;
    return;
  }
  const byKey = new Map(groups.map((g) => [g.key, g]));
  const stat = (g) => `${pct(g.best_test_acc.mean)}${g.best_test_acc.std != null ? ` ± ${pct(g.best_test_acc.std)}` : ''} (n=${g.best_test_acc.n})`;
  box.innerHTML = `<h3>Is the difference real?</h3>${drawn.verdicts.map(({ a, b, verdict: v, changes }) => {
    const [ia, ib] = [byKey.get(a.key), byKey.get(b.key)];
    if (!ia || !ib) return '';
    const kind = v.real === null ? 'unknown' : v.real ? 'real' : 'noise';
    const changed = changes.length ? changes.map((c) => esc(c.text)).join('; ') : 'nothing but the seeds';
    const figures = v.low !== null ? ` · difference ${points(v.diff)} points, 95% CI [${points(v.low)}, ${points(v.high)}]`
      + `${v.p_value !== null ? ` · p = ${v.p_value.toPrecision(2)} (Welch's t, ${v.df.toFixed(1)} df)` : ''}` : '';
    return `<div class="verdict verdict-${kind}" data-testid="verdict-${b.key}" data-real="${v.real}">
      <p class="verdict-text"><span class="swatch" style="background:${ib.color}"></span><strong>${esc(ib.label)}</strong>
        against <span class="swatch" style="background:${ia.color}"></span><strong>${esc(ia.label)}</strong>:
        <span class="verdict-words">${esc(v.text)}</span></p>
      <p class="muted">mean best accuracy ${stat(b)} against ${stat(a)}${figures}</p>
      <p class="muted">What changed: ${changed}.</p>
    </div>`;
  }).join('')}`;
}

function diffTable(all) {
  const configs = all.map((i) => ({ model: i.model, dataset: i.dataset, ...(i.config || {}),
    ...(i.kind === 'group' ? { seed: `${i.seeds.join(', ')} (group)` } : {}) }));
  const keys = [...new Set(configs.flatMap((c) => Object.keys(c)))].filter((k) => k !== 'name');
  const differ = keys.filter((k) => new Set(configs.map((c) => JSON.stringify(c[k] ?? null))).size > 1).sort();
  const head = `<thead><tr><th>hyper-parameter</th>${all.map((i) =>
    `<th><span class="swatch" style="background:${i.color}"></span>${esc(i.label)}</th>`).join('')}</tr></thead>`;
  const body = differ.length
    ? differ.map((k) => `<tr data-key="${esc(k)}"><th><code>${esc(k)}</code></th>${configs.map((c) =>
      `<td>${esc(value(c[k]))}</td>`).join('')}</tr>`).join('')
    : `<tr><td colspan="${all.length + 1}" class="muted">${all.length > 1
      ? 'All hyper-parameters are the same.' : 'Select two or more runs to see what differs.'}</td></tr>`;
  $('compare-diff').innerHTML = `${head}<tbody>${body}</tbody>`;
}

function missingMessage(runs, groups) {
  const names = [...runs.map((id) => `run #${id}`), ...groups.map((k) => `group ${k}`)].join(', ');
  const one = runs.length + groups.length === 1;
  return `${names[0].toUpperCase()}${names.slice(1)} ${one ? 'was' : 'were'} not found (deleted, or never created); `
    + `${one ? 'it is' : 'they are'} left out of the comparison.`;
}

async function load(state) {
  const seq = ++loadSeq;
  const { sel, groups: keys } = state;
  drawn = null;
  const empty = sel.length === 0 && keys.length === 0;
  $('compare-empty').hidden = !empty;
  $('compare-body').hidden = empty;
  if (empty) return;
  const view = { sel, groups: new Map(), verdicts: [], contextIds: [], zoo: [], state };
  try {
    const [fetched, groups, zoo, verdictList] = await Promise.all([Promise.all(sel.map(fetchRun)),
      Promise.all(keys.map(fetchGroup)), loadZoo().catch(() => []), fetchVerdicts(keys).catch(() => [])]);
    const missingRuns = sel.filter((_, i) => !fetched[i]);
    const missingGroups = keys.filter((_, i) => !groups[i]);
    if (seq !== loadSeq) return;
    if (missingRuns.length || missingGroups.length) {
      toast(missingMessage(missingRuns, missingGroups), 'error');
      setState({ sel: sel.filter((id) => !missingRuns.includes(id)), groups: keys.filter((k) => !missingGroups.includes(k)) });
      return;
    }
    keys.forEach((key, i) => view.groups.set(key, groups[i]));
    view.zoo = zoo;
    view.verdicts = verdictList;
    const datasets = new Set([...sel.map((id) => store.get(id).dataset), ...groups.map((g) => g.dataset)]);
    view.contextIds = await fetchContext([...datasets]);
  } catch (e) {
    if (seq === loadSeq) toast(`Could not load the comparison: ${e.message}`, 'error');
    return;
  }
  if (seq !== loadSeq) return;
  drawn = view;
  render();
}

// Draws the comparison from the store and the groups held, again whenever one changes.
function render() {
  const { state } = drawn;
  if (drawn.sel.some((id) => !store.get(id) || !store.metrics(id))) return; // deleted: the selection follows
  const all = items();
  contextOptions(state.ctx);
  for (const input of document.querySelectorAll('input[name="compare-x"]')) input.checked = input.value === state.x;
  $('compare-tx').value = ['total', 'epoch', 'target'].includes(state.tx) ? state.tx : 'total';
  $('compare-logy').checked = state.logy === '1';
  $('compare-as-groups').hidden = !all.some((i) => i.kind === 'run' && i.run.group_key);
  legend(all);
  verdicts(all);
  curveCharts(all, { x: state.x === 'wall' ? 'wall' : 'epoch', logY: state.logy === '1' });
  scatterCharts(all, context(all, $('compare-ctx').value), drawn.zoo, { tx: $('compare-tx').value });
  bestChart(all, drawn.zoo);
  diffTable(all);
}

function onChange({ type, id, run }) {
  if (type === 'progress' || !drawn) return;
  if (drawn.sel.includes(id)) scheduleRender();
  const inGroup = [...drawn.groups.values()].some((g) => g.run_ids.includes(id));
  if (inGroup || (run?.group_key && drawn.groups.has(run.group_key))) scheduleGroups();
}

let lastKey = null;

export function show(state) {
  visible = true;
  const key = JSON.stringify([state.sel, state.groups]);
  if (key !== lastKey) {
    lastKey = key;
    load(state);
  } else if (drawn) {
    drawn.state = state; // an option changed: the same items, drawn again
    render();
  }
}

export function hide() {
  visible = false;
  lastKey = null;
}

// Runs into their groups (dropping runs that have none), or a group into its runs.
function toGroups(ids) {
  const state = readState();
  const keys = ids.map((id) => store.get(id)?.group_key).filter(Boolean);
  setState({ sel: state.sel.filter((id) => !ids.includes(id) || !store.get(id)?.group_key),
    groups: [...new Set([...state.groups, ...keys])] });
}

export function init() {
  store.subscribe(onChange);
  for (const input of document.querySelectorAll('input[name="compare-x"]')) {
    input.addEventListener('change', () => setState({ x: input.value }));
  }
  $('compare-ctx').addEventListener('change', (e) => setState({ ctx: e.target.value }));
  $('compare-tx').addEventListener('change', (e) => setState({ tx: e.target.value }));
  $('compare-logy').addEventListener('change', (e) => setState({ logy: e.target.checked ? '1' : '' }));
  $('compare-as-groups').addEventListener('click', () => toGroups(readState().sel));
  $('compare-legend').addEventListener('click', (e) => {
    const b = e.target.closest('button');
    if (!b) return;
    const state = readState();
    const { removeRun, removeGroup, toGroup, toRuns } = b.dataset;
    if (removeRun) setState({ sel: state.sel.filter((id) => id !== Number(removeRun)) });
    if (removeGroup) setState({ groups: state.groups.filter((k) => k !== removeGroup) });
    if (toGroup) toGroups([Number(toGroup)]);
    if (toRuns) {
      const ids = drawn?.groups.get(toRuns)?.run_ids || [];
      setState({ groups: state.groups.filter((k) => k !== toRuns), sel: [...new Set([...state.sel, ...ids])] });
    }
  });
}
