// Live curves: a run's loss and accuracy growing as epoch and progress events arrive, without
// a reload and without losing the user's zoom (Plotly.extendTraces, layout.uirevision), and the
// "Active runs" panel of the Runs view: one card per queued or running run.
/* global Plotly */

import { api, query } from './api.js';
import { esc, pct, seconds } from './format.js';
import { axis, CONFIG, layout, PALETTE } from './plots.js';
import { ACTIVE, actionButtons, debounce, performAction, progressHtml, statusBadge } from './widgets.js';

// Trace order in a curves chart; tests read data[0] (train loss) to see it grow.
const TRAIN_LOSS = 0;
const TEST_LOSS = 1;
const TRAIN_ACC = 2;
const TEST_ACC = 3;

function curveTraces(m) {
  const train = [];
  for (const p of m.progress || []) train.push({ x: p.epoch, loss: p.train_loss, acc: p.train_acc });
  for (const e of m.epochs || []) train.push({ x: e.epoch, loss: e.train_loss, acc: e.train_acc });
  train.sort((a, b) => a.x - b.x);
  const dedup = train.filter((p, i) => i === train.length - 1 || train[i + 1].x !== p.x);
  const epochs = [...(m.epochs || [])].sort((a, b) => a.epoch - b.epoch);
  const line = (color, dash) => ({ color, width: 2, dash });
  return [
    { name: 'train', x: dedup.map((p) => p.x), y: dedup.map((p) => p.loss), mode: 'lines',
      line: line(PALETTE[0]), xaxis: 'x', yaxis: 'y', legendgroup: 'train',
      hovertemplate: 'epoch %{x:.2f}<br>train loss %{y:.4f}<br>(mean over the epoch so far)<extra></extra>' },
    { name: 'test', x: epochs.map((e) => e.epoch), y: epochs.map((e) => e.test_loss), mode: 'lines+markers',
      line: line(PALETTE[1]), marker: { size: 6 }, xaxis: 'x', yaxis: 'y', legendgroup: 'test' },
    { name: 'train accuracy', x: dedup.map((p) => p.x), y: dedup.map((p) => p.acc), mode: 'lines',
      line: line(PALETTE[0]), xaxis: 'x2', yaxis: 'y2', legendgroup: 'train', showlegend: false,
      hovertemplate: 'epoch %{x:.2f}<br>train accuracy %{y:.2%}<br>(over the epoch so far)<extra></extra>' },
    { name: 'test accuracy', x: epochs.map((e) => e.epoch), y: epochs.map((e) => e.test_acc), mode: 'lines+markers',
      line: line(PALETTE[1]), marker: { size: 6 }, xaxis: 'x2', yaxis: 'y2', legendgroup: 'test', showlegend: false },
  ];
}

// One run's loss (left) and accuracy (right) against epochs; fed by events after one fetch.
export class RunCurves {
  constructor(el, runId, { height = 240, emptyText = 'waiting for the first batches…' } = {}) {
    this.el = el;
    this.runId = runId;
    this.height = height;
    this.emptyText = emptyText;
    this.pending = [];
    this.ready = false;
    this.lastX = -Infinity;
    this.lastEpoch = -Infinity;
    this.empty = true;
  }

  async load() {
    this.ready = false;
    const metrics = await api(`/runs/${this.runId}/metrics`);
    const data = curveTraces(metrics);
    const xs = data[TRAIN_LOSS].x;
    const es = data[TEST_ACC].x;
    this.lastX = xs.length ? xs[xs.length - 1] : -Infinity;
    this.lastEpoch = es.length ? es[es.length - 1] : -Infinity;
    this.empty = xs.length === 0 && es.length === 0;
    await Plotly.react(this.el, data, this.layout(), CONFIG);
    this.ready = true;
    const pending = this.pending;
    this.pending = [];
    for (const [type, d] of pending) this.handle(type, d);
  }

  layout() {
    // Empty axes get a plain frame until the first point arrives (see extend()); then they
    // follow the data, until the user zooms.
    const empty = (range) => (this.empty ? { range } : {});
    const x = { rangemode: 'tozero', ...empty([0, 1]) };
    return layout({
      height: this.height,
      uirevision: `run-${this.runId}`,
      margin: { l: 48, r: 12, t: 8, b: 36 },
      legend: { orientation: 'h', y: 1.02, yanchor: 'bottom', x: 1, xanchor: 'right', font: { size: 11 } },
      xaxis: axis({ domain: [0, 0.45], title: { text: 'epoch', standoff: 4 }, ...x }),
      yaxis: axis({ title: { text: 'loss', standoff: 4 }, ...empty([0, 2.5]) }),
      xaxis2: axis({ domain: [0.55, 1], title: { text: 'epoch', standoff: 4 }, ...x }),
      yaxis2: axis({ anchor: 'x2', title: { text: 'accuracy', standoff: 4 }, tickformat: '.1~%', ...empty([0, 1]) }),
      annotations: this.empty ? [{ text: this.emptyText, xref: 'paper', yref: 'paper',
        x: 0.5, y: 0.5, showarrow: false, font: { color: '#6b7280' } }] : [],
    });
  }

  handle(type, d) {
    if (!this.ready) {
      if (type === 'progress' || type === 'epoch') this.pending.push([type, d]);
      return;
    }
    if (type === 'progress' && d.epoch > this.lastX) {
      this.lastX = d.epoch;
      this.extend([[d.epoch], [d.epoch]], [[d.train_loss ?? null], [d.train_acc ?? null]], [TRAIN_LOSS, TRAIN_ACC]);
    } else if (type === 'epoch' && d.epoch > this.lastEpoch) {
      this.lastEpoch = d.epoch;
      const xs = [[d.epoch], [d.epoch]];
      const ys = [[d.test_loss ?? null], [d.test_acc ?? null]];
      const idx = [TEST_LOSS, TEST_ACC];
      if (d.epoch > this.lastX) {
        this.lastX = d.epoch;
        xs.push([d.epoch], [d.epoch]);
        ys.push([d.train_loss ?? null], [d.train_acc ?? null]);
        idx.push(TRAIN_LOSS, TRAIN_ACC);
      }
      this.extend(xs, ys, idx);
    }
  }

  extend(x, y, indices) {
    Plotly.extendTraces(this.el, { x, y }, indices);
    if (this.empty) {
      this.empty = false;
      Plotly.relayout(this.el, { annotations: [], 'xaxis.autorange': true, 'yaxis.autorange': true,
        'xaxis2.autorange': true, 'yaxis2.autorange': true });
    }
  }

  destroy() {
    Plotly.purge(this.el);
  }
}

// Run fields a progress or epoch event changes, for progress bars.
export function applyEvent(run, type, d) {
  if (type === 'progress') {
    run.epochs_done = Math.floor(d.epoch);
    run.epoch_progress = d.epoch - Math.floor(d.epoch);
    if (d.eta_seconds !== undefined) run.eta_seconds = d.eta_seconds;
  } else if (type === 'epoch') {
    run.epochs_done = Math.max(run.epochs_done || 0, d.epoch);
    run.epoch_progress = 0;
    run.final_test_acc = d.test_acc;
    if (typeof d.test_acc === 'number') run.best_test_acc = Math.max(run.best_test_acc ?? 0, d.test_acc);
    if (d.images_per_second !== undefined) run.images_per_second = d.images_per_second;
    if (d.wall_seconds !== undefined) run.total_seconds = d.wall_seconds;
  }
  return run;
}

const MAX_QUEUED_CARDS = 4;
const MAX_DONE_CARDS = 4;

// The "Active runs" panel: running runs, the head of the queue, runs launched from this page,
// and the last few that ended while the page watched them.
export class LivePanel {
  constructor() {
    this.root = document.getElementById('live-panel');
    this.box = document.getElementById('live-cards');
    this.more = document.getElementById('live-more');
    this.summary = document.getElementById('live-summary');
    this.cards = new Map(); // id -> {run, el, curves, endedAt}
    this.watched = new Set();
    this.counts = { running: 0, queued: 0 };
    this.scheduleRefresh = debounce(() => this.refresh(), 400);
    this.box.addEventListener('click', (e) => this.onClick(e));
  }

  watch(run) {
    this.watched.add(run.id);
    this.upsert(run);
    this.scheduleRefresh();
  }

  async refresh() {
    const common = { sort: 'id', order: 'asc' };
    const [running, queued] = await Promise.all([
      api(`/runs${query({ ...common, status: 'running', limit: 50 })}`),
      api(`/runs${query({ ...common, status: 'queued', limit: MAX_QUEUED_CARDS })}`),
    ]);
    this.counts = { running: running.total, queued: queued.total };
    const seen = new Set();
    for (const run of [...running.items, ...queued.items]) {
      seen.add(run.id);
      this.upsert(run);
    }
    // A card still shown as active that neither list holds has moved on: fetch where it stands.
    for (const [id, card] of this.cards) {
      if (seen.has(id) || !ACTIVE.has(card.run.status)) continue;
      if (card.run.status === 'queued' && !this.watched.has(id)) { this.remove(id); continue; }
      api(`/runs/${id}`).then((run) => this.upsert(run)).catch(() => this.remove(id));
    }
    this.render();
  }

  handle(type, d) {
    const id = type === 'status' ? d.id : d.run_id;
    const card = this.cards.get(id);
    if (type === 'deleted') { this.remove(id); this.render(); return; }
    if (type === 'status') {
      if (card || ACTIVE.has(d.status)) this.upsert(d);
      this.scheduleRefresh();
      return;
    }
    if (!card) {
      if (type === 'progress' || type === 'epoch') this.scheduleRefresh();
      return;
    }
    applyEvent(card.run, type, d);
    if (card.run.status === 'queued') card.run.status = 'running'; // its status event is on the way
    this.renderProgress(card);
    this.ensureChart(card);
    card.curves.handle(type, d);
  }

  upsert(run) {
    let card = this.cards.get(run.id);
    if (!card) {
      const queuedCards = [...this.cards.values()].filter((c) => c.run.status === 'queued').length;
      const wanted = this.watched.has(run.id) || run.status === 'running'
        || (run.status === 'queued' && queuedCards < MAX_QUEUED_CARDS);
      if (!wanted) return;
      card = this.createCard(run);
    } else {
      card.run = { ...card.run, ...run };
    }
    if (!ACTIVE.has(card.run.status) && !card.endedAt) card.endedAt = Date.now();
    this.renderCard(card);
    this.render();
  }

  createCard(run) {
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
    const card = { run: { ...run }, el, curves: null, endedAt: null, sig: '' };
    this.cards.set(run.id, card);
    this.box.append(el);
    return card;
  }

  // A queued run's card stays compact; its chart starts when a worker takes it.
  ensureChart(card) {
    if (card.curves || card.run.status === 'queued') return;
    const el = card.el.querySelector('.live-chart');
    el.hidden = false;
    card.curves = new RunCurves(el, card.run.id, {
      height: 210, emptyText: ACTIVE.has(card.run.status) ? undefined : 'no epoch was recorded',
    });
    card.curves.load().catch((e) => console.error(e));
  }

  renderCard(card) {
    const { run, el } = card;
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
    this.renderProgress(card);
    this.ensureChart(card);
  }

  renderProgress(card) {
    const { run, el } = card;
    let html = progressHtml(run);
    if (!ACTIVE.has(run.status)) {
      const parts = [`best ${pct(run.best_test_acc)}`, `${run.epochs_done ?? 0} epochs`, seconds(run.total_seconds)];
      if (run.status === 'failed' && run.error) parts.push(run.error);
      html = `<div class="ended-summary">${esc(parts.join(' · '))}</div>`;
    }
    const slot = el.querySelector('.slot-progress');
    if (slot.innerHTML !== html) slot.innerHTML = html;
  }

  remove(id) {
    const card = this.cards.get(id);
    if (!card) return;
    card.curves?.destroy();
    card.el.remove();
    this.cards.delete(id);
    this.watched.delete(id);
  }

  // Orders the cards: running, queued by place, then ended (newest first); trims old ended ones.
  render() {
    const rank = (c) => (c.run.status === 'running' ? 0 : c.run.status === 'queued' ? 1 : 2);
    const cards = [...this.cards.values()].sort((a, b) => rank(a) - rank(b)
      || (rank(a) === 1 ? (a.run.queue_position ?? 1e9) - (b.run.queue_position ?? 1e9) : 0)
      || (rank(a) === 2 ? b.endedAt - a.endedAt : a.run.id - b.run.id));
    const ended = cards.filter((c) => rank(c) === 2);
    for (const c of ended.slice(MAX_DONE_CARDS)) this.remove(c.run.id);
    const keep = cards.filter((c) => this.cards.has(c.run.id));
    const current = [...this.box.children];
    if (keep.some((c, i) => current[i] !== c.el)) for (const c of keep) this.box.append(c.el);
    this.root.hidden = keep.length === 0;
    const shownQueued = keep.filter((c) => c.run.status === 'queued').length;
    const hiddenQueued = Math.max(this.counts.queued - shownQueued, 0);
    this.more.hidden = hiddenQueued === 0;
    this.more.textContent = `and ${hiddenQueued} more queued`;
    this.summary.textContent = `${this.counts.running} running · ${this.counts.queued} queued`;
  }

  async onClick(e) {
    const dismiss = e.target.closest('.slot-dismiss');
    if (dismiss) {
      this.remove(Number(dismiss.closest('.live-card').dataset.run));
      this.render();
      return;
    }
    const button = e.target.closest('button[data-action]');
    if (!button) return;
    const card = this.cards.get(Number(button.dataset.run));
    if (!card) return;
    button.disabled = true;
    const result = await performAction(button.dataset.action, card.run);
    button.disabled = false;
    if (result?.deleted) { this.remove(result.id); this.render(); } else if (result) {
      if (result.id === card.run.id) this.upsert(result);
      else this.watch(result);
    }
  }
}
