// One run's loss (left) and accuracy (right) against epochs, for the live cards and the run
// detail: drawn from the store's metrics, then extended as points arrive, without a reload and
// without losing the user's zoom (Plotly.extendTraces, layout.uirevision). The run keeps its
// colour (plots.runColor); train and test differ by line style. Options: smoothing of the train
// curves (a debiased, time-weighted EMA), a log scale for the loss.
/* global Plotly */

import { axis, CONFIG, fade, layout, runColor } from './plots.js';
import * as store from './store.js';

// Trace order in a curves chart; tests read data[0] (train loss) to see it grow. With smoothing
// on, the raw train points follow, faint.
const [TRAIN_LOSS, TEST_LOSS, TRAIN_ACC, TEST_ACC, RAW_LOSS, RAW_ACC] = [0, 1, 2, 3, 4, 5];
// Smoothing weighs the past by `smooth` per SMOOTH_EPOCHS of x, however dense the points: a
// long epoch's many progress points and a short one's few smooth alike.
const SMOOTH_EPOCHS = 0.1;

// Train points (within-epoch progress and whole epochs) in epoch order past `after`; of points
// at one epoch the last wins (an epoch's own figures over the progress that led to it).
function trainPoints(progress, epochs, after) {
  const points = [...progress, ...epochs].sort((a, b) => a.epoch - b.epoch);
  return points.filter((p, i) => p.epoch > after && (i === points.length - 1 || points[i + 1].epoch !== p.epoch));
}

// A debiased exponential moving average over uneven x (TensorBoard's, weighted by the x step):
// its first value is the first point's, not a pull towards 0.
export class Ema {
  constructor(smooth) {
    Object.assign(this, { smooth, num: 0, den: 0, lastX: null });
  }

  push(x, y) {
    if (typeof y !== 'number' || !Number.isFinite(y)) return null;
    const w = this.lastX === null ? 0 : this.smooth ** ((x - this.lastX) / SMOOTH_EPOCHS);
    this.num = w * this.num + (1 - w) * y;
    this.den = w * this.den + (1 - w);
    this.lastX = x;
    return this.den > 0 ? this.num / this.den : y;
  }
}

export class RunCurves {
  constructor(el, runId, { height = 240, emptyText = 'waiting for the first batches…', smooth = 0, logY = false,
    failure = null } = {}) {
    Object.assign(this, { el, runId, height, emptyText, smooth, logY, failure });
    this.color = runColor(runId);
    this.drawn = null; // how much of the store's metrics the chart shows, once drawn
    this.unsubscribe = store.subscribe(({ type, id }) => {
      if (id === runId && this.drawn && (type === 'progress' || type === 'epoch')) this.extend();
    });
  }

  async load() {
    const { epochs, progress } = await store.loadMetrics(this.runId);
    if (!this.unsubscribe) return; // destroyed meanwhile
    await this.redraw(epochs, progress);
    if (!this.unsubscribe) return;
    this.extend(); // what arrived while drawing
  }

  // Options changed (smoothing, log scale): the same points, drawn again.
  async setOptions(options) {
    if (Object.entries(options).every(([k, v]) => this[k] === v)) return;
    Object.assign(this, options);
    const held = store.metrics(this.runId);
    if (held && this.drawn) await this.redraw(held.epochs, held.progress);
  }

  async redraw(epochs, progress) {
    const train = trainPoints(progress, epochs, -Infinity);
    this.empty = train.length === 0 && epochs.length === 0;
    this.emas = { loss: new Ema(this.smooth), acc: new Ema(this.smooth) };
    const drawn = { epochs: epochs.length, progress: progress.length, lastX: train.at(-1)?.epoch ?? -Infinity };
    this.drawn = null;
    await Plotly.react(this.el, this.traces(train, epochs), this.layout(train), CONFIG);
    this.drawn = drawn;
  }

  trainY(points, key) {
    const ys = points.map((p) => p[key] ?? null);
    if (!this.smooth) return ys;
    const ema = this.emas[key === 'train_loss' ? 'loss' : 'acc'];
    return points.map((p, i) => ema.push(p.epoch, ys[i]));
  }

  traces(train, epochs) {
    const { color } = this;
    const xs = (points) => points.map((p) => p.epoch);
    const ys = (points, key) => points.map((p) => p[key] ?? null);
    const smoothed = this.smooth ? ' (smoothed)' : '';
    const trainLine = { color, width: 2, dash: 'dot' };
    const testLine = { color, width: 2 };
    const data = [
      { name: 'train', x: xs(train), y: this.trainY(train, 'train_loss'), mode: 'lines', line: trainLine,
        xaxis: 'x', yaxis: 'y', legendgroup: 'train',
        hovertemplate: `epoch %{x:.2f}<br>train loss %{y:.4f}${smoothed}<br>(mean over the epoch so far)<extra></extra>` },
      { name: 'test', x: xs(epochs), y: ys(epochs, 'test_loss'), mode: 'lines+markers', line: testLine,
        marker: { size: 6, color }, xaxis: 'x', yaxis: 'y', legendgroup: 'test',
        hovertemplate: 'epoch %{x}<br>test loss %{y:.4f}<extra></extra>' },
      { name: 'train accuracy', x: xs(train), y: this.trainY(train, 'train_acc'), mode: 'lines', line: trainLine,
        xaxis: 'x2', yaxis: 'y2', legendgroup: 'train', showlegend: false,
        hovertemplate: `epoch %{x:.2f}<br>train accuracy %{y:.2%}${smoothed}<br>(over the epoch so far)<extra></extra>` },
      { name: 'test accuracy', x: xs(epochs), y: ys(epochs, 'test_acc'), mode: 'lines+markers', line: testLine,
        marker: { size: 6, color }, xaxis: 'x2', yaxis: 'y2', legendgroup: 'test', showlegend: false,
        hovertemplate: 'epoch %{x}<br>test accuracy %{y:.2%}<extra></extra>' },
    ];
    if (this.smooth) {
      const raw = { mode: 'lines', line: { color: fade(color, 0.3), width: 1 }, showlegend: false, hoverinfo: 'skip' };
      data.push({ ...raw, name: 'train (raw)', x: xs(train), y: ys(train, 'train_loss'), xaxis: 'x', yaxis: 'y' },
        { ...raw, name: 'train accuracy (raw)', x: xs(train), y: ys(train, 'train_acc'), xaxis: 'x2', yaxis: 'y2' });
    }
    return data;
  }

  layout(train = []) {
    // An empty chart is a bare frame with its message (no ticks for the text to run into);
    // drawn, the axes follow the data but never past what a loss or an accuracy can be, so a
    // first lone point does not stretch them to 0–150% or a negative loss.
    const bare = this.empty ? { showticklabels: false, showgrid: false, zeroline: false, range: [0, 1], title: { text: '' } } : {};
    const x = { rangemode: 'tozero', ...bare };
    const loss = this.logY ? { type: 'log' } : { rangemode: 'nonnegative' };
    const lossTitle = `loss${this.logY ? ' (log scale)' : ''}`;
    const notes = [];
    if (this.empty) {
      notes.push({ text: this.emptyText, xref: 'paper', yref: 'paper', x: 0.5, y: 0.5, showarrow: false,
        font: { color: '#6b7280' }, bgcolor: '#ffffff' });
    } else if (this.failure && train.length) {
      const last = train.at(-1);
      notes.push({ text: `✕ ${this.failure}`, x: last.epoch, y: this.logY ? Math.log10(last.train_loss) : last.train_loss,
        xref: 'x', yref: 'y', ax: -10, ay: 18, xanchor: 'right', showarrow: true, arrowcolor: '#b91c1c',
        font: { color: '#b91c1c', size: 11 }, bgcolor: 'rgba(255,255,255,0.85)' });
    }
    return layout({
      height: this.height,
      uirevision: `run-${this.runId}-${this.logY}`,
      margin: { l: 48, r: 12, t: 8, b: 36 },
      legend: { orientation: 'h', y: 1.02, yanchor: 'bottom', x: 1, xanchor: 'right', font: { size: 11 } },
      xaxis: axis({ domain: [0, 0.45], title: { text: 'epoch', standoff: 4 }, ...x }),
      yaxis: axis({ title: { text: lossTitle, standoff: 4 }, ...loss, ...bare, ...(this.empty ? { type: 'linear' } : {}) }),
      xaxis2: axis({ domain: [0.55, 1], title: { text: 'epoch', standoff: 4 }, ...x }),
      yaxis2: axis({ anchor: 'x2', title: { text: 'accuracy', standoff: 4 }, tickformat: '.1~%',
        autorangeoptions: { clipmin: 0, clipmax: 1 }, ...bare }),
      annotations: notes,
    });
  }

  // Adds the points the store gained since the chart was last drawn.
  extend() {
    const held = store.metrics(this.runId);
    if (!held || !this.drawn) return;
    if (this.empty && (held.epochs.length || held.progress.length)) {
      // The first points: axes and ticks appear; what arrives meanwhile is added after.
      this.redraw(held.epochs, held.progress).then(() => this.extend());
      return;
    }
    const epochs = held.epochs.slice(this.drawn.epochs);
    const train = trainPoints(held.progress.slice(this.drawn.progress), epochs, this.drawn.lastX);
    this.drawn = { epochs: held.epochs.length, progress: held.progress.length, lastX: train.at(-1)?.epoch ?? this.drawn.lastX };
    const update = { x: [], y: [] };
    const indices = [];
    const add = (points, ys, index) => {
      if (!points.length) return;
      update.x.push(points.map((p) => p.epoch));
      update.y.push(ys);
      indices.push(index);
    };
    const raw = (points, key) => points.map((p) => p[key] ?? null);
    add(train, this.trainY(train, 'train_loss'), TRAIN_LOSS);
    add(epochs, raw(epochs, 'test_loss'), TEST_LOSS);
    add(train, this.trainY(train, 'train_acc'), TRAIN_ACC);
    add(epochs, raw(epochs, 'test_acc'), TEST_ACC);
    if (this.smooth) {
      add(train, raw(train, 'train_loss'), RAW_LOSS);
      add(train, raw(train, 'train_acc'), RAW_ACC);
    }
    if (indices.length) Plotly.extendTraces(this.el, update, indices);
  }

  destroy() {
    this.unsubscribe?.();
    this.unsubscribe = null;
    Plotly.purge(this.el);
  }
}
