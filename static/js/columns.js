// The columns of the runs table: the fixed ones, and those a user picks (state.cols): any key
// of the run config (lr, batch size, seed, optimiser, ...) and "changed vs preset". Each column
// knows its header, its cell for a run and for a group of seeds; a picked config column has a
// filter input under its header (a value, a comma-separated list or a lo..hi range, which the
// server applies: GET /runs?config.KEY=...).

import { compact, datetime, esc, int, isNum, pct, seconds, shortDatetime, value } from './format.js';
import { forkLink } from './fork.js';
import { actionButtons, progressHtml, statusBadge } from './widgets.js';

export const CHANGES = 'changes';

// The notes' figure under a run's; "notes" is the word that gives way in narrow windows.
function notesLine(figure, beat) {
  return figure ? `<div class="notes${beat ? ' beat' : ''}" title="recorded in the notes"><span class="notes-word">notes </span>${esc(figure)}</div>` : '';
}

// A group's figure: its mean ± the standard deviation over its seeds ("97.12% ± 0.31").
function spread(stat, fmt, unit) {
  if (!stat || !isNum(stat.mean)) return '—';
  const std = isNum(stat.std) ? ` <span class="std">± ${unit(stat.std)}</span>` : '';
  return `<span class="mean">${fmt(stat.mean)}</span>${std}`;
}
const points = (x) => (x * 100).toFixed(2);
const secs = (x) => seconds(x).replace(/ s$/, '');

export function tagChips(tags) {
  return (tags || []).map((t) => `<button type="button" class="tag" data-tag="${esc(t)}"
    title="Show only runs tagged ${esc(t)}">${esc(t)}</button>`).join('');
}

function nameCell(run) {
  const notes = run.notes ? `<div class="run-notes" title="${esc(run.notes)}">${esc(run.notes.split('\n')[0])}</div>` : '';
  const tags = run.tags?.length ? `<div class="tags" data-testid="tags-${run.id}">${tagChips(run.tags)}</div>` : '';
  return `<a class="run-link" href="#view=detail&run=${run.id}" data-go-view="detail" data-go-run="${run.id}"
    data-testid="run-link-${run.id}" title="${esc(run.name)}"><span class="run-id">#${run.id}</span> ${esc(run.name)}</a>${tags}${notes}`;
}

function groupName(g) {
  return `<button type="button" class="expand" data-expand="${esc(g.key)}" data-testid="expand-${esc(g.key)}"
    aria-expanded="false" aria-label="Show the ${g.n} runs of this group">▸</button>
    <span class="group-name" title="${esc(g.name)}">${esc(g.name)}</span>
    <div class="muted group-seeds">${g.n} run${g.n === 1 ? '' : 's'} · seed${g.seeds.length === 1 ? '' : 's'} ${esc(g.seeds.join(', '))}</div>`;
}

function groupStatus(g) {
  return Object.entries(g.statuses).map(([s, n]) => `<span class="badge status-${esc(s)}">${n} ${esc(s)}</span>`).join(' ');
}

// A run that never started has no time, not "0.0 s".
function timeCell(run) {
  const time = run.started_at || run.total_seconds ? seconds(run.total_seconds) : '—';
  return `<span data-testid="time-${run.id}">${time}</span>` + notesLine(run.notes_seconds != null ? seconds(run.notes_seconds) : '');
}

function bestCell(run) {
  const acc = run.best_test_acc;
  const beat = isNum(acc) && isNum(run.notes_acc) && acc >= run.notes_acc;
  return `<span data-testid="best-${run.id}">${pct(acc)}</span>${notesLine(run.notes_acc != null ? pct(run.notes_acc) : '', beat)}`;
}

function changesCell(changes) {
  const text = changes?.length ? changes.join(', ') : '';
  return text ? `<span title="${esc(text)}">${esc(text)}</span>` : '<span class="muted">the preset</span>';
}

// `opt`: a column that gives way in narrow windows (app.css), so the figures and actions fit.
const FIXED = [
  { id: 'select', cls: 'col-select',
    head: '<input type="checkbox" id="select-page" data-testid="select-page" aria-label="Select all runs on this page">',
    run: (r) => `<input type="checkbox" class="select-run" data-run="${r.id}" data-testid="select-${r.id}" aria-label="Select run ${r.id}">`,
    group: (g) => `<input type="checkbox" class="select-group" data-group="${esc(g.key)}" data-testid="select-group-${esc(g.key)}"
      aria-label="Select the ${g.n} runs of this group">` },
  { id: 'name', label: 'Name', sort: 'name', cls: 'col-name', run: nameCell, group: groupName },
  { id: 'model', label: 'Model', sort: 'model', cls: 'col-model opt', run: (r) => `<code>${esc(r.model)}</code>` },
  { id: 'dataset', label: 'Dataset', sort: 'dataset', cls: 'opt', run: (r) => esc(r.dataset) },
  { id: 'status', label: 'Status', sort: 'status', cls: 'col-status', group: groupStatus,
    run: (r) => `<span class="slot-status">${statusBadge(r)}</span><span class="slot-progress">${progressHtml(r)}</span>` },
  { id: 'params', label: 'Params', sort: 'params', num: true, run: (r) => `<span title="${int(r.params)}">${compact(r.params)}</span>` },
  { id: 'best', label: 'Best acc', sort: 'best_test_acc', num: true, run: bestCell,
    group: (g) => `<span data-testid="group-best-${esc(g.key)}">${spread(g.best_test_acc, pct, points)}</span>` },
  { id: 'final', label: 'Final acc', sort: 'final_test_acc', num: true,
    run: (r) => `<span data-testid="final-${r.id}">${pct(r.final_test_acc)}</span>`, group: (g) => spread(g.final_test_acc, pct, points) },
  { id: 'epochs', label: 'Epochs', sort: 'epochs_done', num: true, group: (g) => esc(value(g.config.epochs)),
    run: (r) => `${r.epochs_done ?? 0} / ${r.epochs_total ?? r.config?.epochs ?? '?'}` },
  { id: 'time', label: 'Time', sort: 'total_seconds', num: true, run: timeCell,
    group: (g) => spread(g.total_seconds, seconds, secs) },
  { id: 'ips', label: 'Images/s', sort: 'images_per_second', num: true, cls: 'opt', run: (r) => int(r.images_per_second) },
  { id: 'created', label: 'Created', sort: 'created_at', cls: 'col-created opt',
    run: (r) => `<span title="${esc(datetime(r.created_at))}">${shortDatetime(r.created_at)}</span>` },
];
// The group figures the server sorts on (GET /groups?sort=), by the runs' column.
const GROUP_SORTS = { id: 'last_id', params: 'params', best_test_acc: 'best_mean', final_test_acc: 'final_mean',
  total_seconds: 'seconds_mean' };

const ACTIONS = {
  id: 'actions', cls: 'col-actions', head: '<span class="visually-hidden">Actions</span>', group: () => '',
  run: (r) => `${actionButtons(r)}${forkLink(r, { compact: true })}<button type="button" class="btn btn-small" data-edit="${r.id}"
    data-testid="edit-${r.id}" title="Name, notes and tags" aria-label="Edit the name, notes and tags of run #${r.id}">✎</button>`,
};

function configColumn(key, kind) {
  const cell = (v) => `<code>${esc(value(v))}</code>`;
  return {
    id: `config.${key}`, picked: true, label: key.replace(/_/g, ' '), sort: `config.${key}`, num: kind === 'number', cls: `col-config cfg-${key}`,
    filter: key, kind, run: (r) => cell(r.config?.[key]),
    group: (g) => (key === 'seed' ? cell(g.seeds.join(', ')) : cell(g.config?.[key])),
  };
}

const CHANGES_COLUMN = { id: CHANGES, picked: true, label: 'Changed vs preset', cls: 'col-changes', run: (r) => changesCell(r.changes),
  group: (g) => changesCell(g.changes) };

// The columns shown for the picked ones (`cols`: 'changes,lr'), in the picker's order, after the
// name: they say what a run is, the figures after them what it gave.
export function columnsFor(cols, configKeys) {
  const picked = new Set(cols.split(',').filter(Boolean));
  const extra = [
    ...(picked.has(CHANGES) ? [CHANGES_COLUMN] : []),
    ...Object.entries(configKeys).filter(([key]) => picked.has(key)).map(([key, kind]) => configColumn(key, kind)),
  ];
  return [...FIXED.slice(0, 2), ...extra, ...FIXED.slice(2), ACTIONS]; // picked ones beside the name
}

// The server's sort for a group of seeds, or null when groups cannot be sorted so.
export const groupSort = (sort) => GROUP_SORTS[sort] ?? null;

function cls(column) {
  return [column.cls, column.num ? 'num' : ''].filter(Boolean).join(' ');
}

export function headerHtml(columns, filters) {
  const head = columns.map((c) => (c.sort
    ? `<th data-sort="${esc(c.sort)}" class="${cls(c)}" aria-sort="none"><button type="button" class="sort">`
      + `<span class="sort-arrow" aria-hidden="true"></span>${esc(c.label)}</button></th>`
    : `<th class="${cls(c)}">${c.head ?? esc(c.label ?? '')}</th>`)).join('');
  if (!columns.some((c) => c.filter)) return `<tr>${head}</tr>`;
  const inputs = columns.map((c) => `<th class="${cls(c)}">${c.filter ? `<input type="text" class="col-filter"
    data-filter="${esc(c.filter)}" data-testid="filter-config-${esc(c.filter)}" value="${esc(filters[c.filter] ?? '')}"
    placeholder="${c.kind === 'number' ? 'value or lo..hi' : 'value, value…'}" aria-label="Filter on ${esc(c.filter)}"
    autocomplete="off" spellcheck="false">` : ''}</th>`).join('');
  return `<tr>${head}</tr><tr class="filter-row">${inputs}</tr>`;
}

// A column without a cell of its own for groups shows what a group shares with its runs
// (model, dataset, params) with the run's cell, or nothing (images/s, created).
const SHARED = new Set(['model', 'dataset', 'params']);

export function cellsHtml(columns, item, kind) {
  const cell = (c) => (kind === 'run' ? c.run : c.group ?? (SHARED.has(c.id) ? c.run : () => ''));
  return columns.map((c) => `<td class="${cls(c)}">${cell(c)(item)}</td>`).join('');
}

// The picker: "changed vs preset" and every config key (GET /zoo/options lists them).
export function pickerHtml(cols, configKeys) {
  const picked = new Set(cols.split(',').filter(Boolean));
  const box = (key, label) => `<label><input type="checkbox" data-col="${esc(key)}" data-testid="col-${esc(key)}"
    ${picked.has(key) ? 'checked' : ''}> ${esc(label)}</label>`;
  return [box(CHANGES, 'changed vs preset'), ...Object.keys(configKeys).map((k) => box(k, k.replace(/_/g, ' ')))].join('');
}
