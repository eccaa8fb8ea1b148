// The "Active runs" panel of the Runs view: one card per running run, the head of the queue,
// runs launched from this page, and the last few that ended while the page watched them. Each
// card renders its run from the store and draws its curves once a worker takes it.

import { esc, pct, seconds } from './format.js';
import { RunCurves } from './curves.js';
import * as store from './store.js';
import { ACTIVE, actionButtons, bindActions, debounce, progressHtml, statusBadge } from './widgets.js';

const MAX_QUEUED_CARDS = 4;
const MAX_DONE_CARDS = 4;

const $ = (id) => document.getElementById(id);
const cards = new Map(); // id -> {el, curves, endedAt, sig}
const watched = new Set();
let counts = { running: 0, queued: 0 };
const scheduleRefresh = debounce(() => refresh(), 400);

export async function refresh() {
  const common = { sort: 'id', order: 'asc' };
  const [running, queued] = await Promise.all([
    store.fetchPage({ ...common, status: 'running', limit: 50 }),
    store.fetchPage({ ...common, status: 'queued', limit: MAX_QUEUED_CARDS }),
  ]);
  counts = { running: running.total, queued: queued.total };
  const items = [...running.items, ...queued.items];
  items.forEach(upsert);
  const seen = new Set(items.map((run) => run.id));
  // A card still shown as active that neither list holds has moved on: fetch where it stands.
  for (const id of cards.keys()) {
    const run = store.get(id);
    if (seen.has(id) || !run || !ACTIVE.has(run.status)) continue;
    if (run.status === 'queued' && !watched.has(id)) { remove(id); continue; }
    store.fetchRun(id).then(upsert).catch(() => remove(id));
  }
  render();
}

function onChange({ type, id, run }) {
  const card = cards.get(id);
  if (type === 'launched') watched.add(id);
  if (type === 'deleted') {
    remove(id);
    render();
  } else if (type === 'progress' || type === 'epoch') {
    if (!card) scheduleRefresh();
    else { renderProgress(card, run); ensureChart(card, run); }
  } else {
    if (card || watched.has(id) || (type === 'status' && ACTIVE.has(run.status))) upsert(run);
    if (type !== 'put') scheduleRefresh(); // a new run, a claim or an end moves the lists
  }
}

function upsert(run) {
  let card = cards.get(run.id);
  if (!card) {
    const queuedCards = [...cards.keys()].filter((id) => store.get(id)?.status === 'queued').length;
    const wanted = watched.has(run.id) || run.status === 'running'
      || (run.status === 'queued' && queuedCards < MAX_QUEUED_CARDS);
    if (!wanted) return;
    card = createCard(run);
  }
  if (!ACTIVE.has(run.status) && !card.endedAt) card.endedAt = Date.now();
  renderCard(card, run);
  render();
}

function createCard(run) {
  const el = document.createElement('article');
  el.className = 'live-card card';
  el.dataset.run = run.id;
  el.setAttribute('data-testid', `live-card-${run.id}`);
  el.innerHTML = `
    <div class="live-card-head">
      <a class="run-link" href="#view=detail&run=${run.id}" data-go-view="detail" data-go-run="${run.id}">
        <span class="run-id">#${run.id}</span> <span class="slot-name"></span></a>
      <span class="slot-status"></span>
      <span class="live-card-actions slot-actions"></span>
      <button type="button" class="icon-btn slot-dismiss" title="Dismiss" aria-label="Dismiss" hidden>×</button>
    </div>
    <div class="live-card-sub muted slot-sub"></div>
    <div class="slot-progress"></div>
    <div class="live-chart" id="live-chart-${run.id}" data-testid="live-chart-${run.id}" hidden></div>`;
  const card = { el, curves: null, endedAt: null, sig: '' };
  cards.set(run.id, card);
  $('live-cards').append(el);
  return card;
}

// A queued run's card stays compact; its chart starts when a worker takes it. A run that
// ended before any worker took it (cancelled in the queue) never gets one.
function ensureChart(card, run) {
  if (card.curves || run.status === 'queued' || (!ACTIVE.has(run.status) && !run.started_at)) return;
  const el = card.el.querySelector('.live-chart');
  el.hidden = false;
  card.curves = new RunCurves(el, run.id, {
    height: 210, emptyText: ACTIVE.has(run.status) ? undefined : 'nothing was recorded',
  });
  card.curves.load().catch((e) => console.error(e));
}

function renderCard(card, run) {
  const { el } = card;
  el.querySelector('.slot-name').textContent = run.name || run.model;
  el.querySelector('.slot-sub').textContent = `${run.model} · ${run.dataset}${run.worker ? ` · ${run.worker}` : ''}`;
  const sig = `${run.status}|${run.cancel_requested}`;
  if (sig !== card.sig) {
    card.sig = sig;
    el.querySelector('.slot-status').innerHTML = statusBadge(run);
    el.querySelector('.slot-actions').innerHTML = actionButtons(run);
    el.querySelector('.slot-dismiss').hidden = ACTIVE.has(run.status);
    el.classList.toggle('ended', !ACTIVE.has(run.status));
  }
  renderProgress(card, run);
  ensureChart(card, run);
}

function renderProgress(card, run) {
  let html = progressHtml(run);
  if (!ACTIVE.has(run.status)) {
    const parts = [`best ${pct(run.best_test_acc)}`, `${run.epochs_done ?? 0} epochs`, seconds(run.total_seconds)];
    if (run.status === 'failed' && run.error) parts.push(run.error);
    html = `<div class="ended-summary">${esc(parts.join(' · '))}</div>`;
  }
  const slot = card.el.querySelector('.slot-progress');
  if (slot.innerHTML !== html) slot.innerHTML = html;
}

function remove(id) {
  const card = cards.get(id);
  if (!card) return;
  card.curves?.destroy();
  card.el.remove();
  cards.delete(id);
  watched.delete(id);
}

// Orders the cards: running, queued by place, then ended (newest first); trims old ended ones.
function render() {
  const shown = [...cards].map(([id, card]) => ({ card, run: store.get(id) })).filter(({ run }) => run);
  const rank = ({ run }) => (run.status === 'running' ? 0 : run.status === 'queued' ? 1 : 2);
  shown.sort((a, b) => rank(a) - rank(b)
    || (rank(a) === 1 ? (a.run.queue_position ?? 1e9) - (b.run.queue_position ?? 1e9) : 0)
    || (rank(a) === 2 ? b.card.endedAt - a.card.endedAt : a.run.id - b.run.id));
  for (const { run } of shown.filter((c) => rank(c) === 2).slice(MAX_DONE_CARDS)) remove(run.id);
  const keep = shown.filter(({ run }) => cards.has(run.id));
  const box = $('live-cards');
  if (keep.some(({ card }, i) => box.children[i] !== card.el)) for (const { card } of keep) box.append(card.el);
  $('live-panel').hidden = keep.length === 0;
  const hiddenQueued = Math.max(counts.queued - keep.filter(({ run }) => run.status === 'queued').length, 0);
  $('live-more').hidden = hiddenQueued === 0;
  $('live-more').textContent = `and ${hiddenQueued} more queued`;
  $('live-summary').textContent = `${counts.running} running · ${counts.queued} queued`;
}

export function init() {
  store.subscribe(onChange);
  bindActions($('live-cards'));
  $('live-cards').addEventListener('click', (e) => {
    const dismiss = e.target.closest('.slot-dismiss');
    if (!dismiss) return;
    remove(Number(dismiss.closest('.live-card').dataset.run));
    render();
  });
}
