// One run's loss (left) and accuracy (right) against epochs, for the live cards and the run
// detail: drawn from the store's metrics, then extended as points arrive, without a reload and
// without losing the user's zoom (Plotly.extendTraces, layout.uirevision).
/* global Plotly */

import { axis, CONFIG, layout, PALETTE } from './plots.js';
import * as store from './store.js';

// Trace order in a curves chart; tests read data[0] (train loss) to see it grow.
const [TRAIN_LOSS, TEST_LOSS, TRAIN_ACC, TEST_ACC] = [0, 1, 2, 3];

// Train points (within-epoch progress and whole epochs) in epoch order past `after`; of points
// at one epoch the last wins (an epoch's own figures over the progress that led to it).
function trainPoints(progress, epochs, after) {
  const points = [...progress, ...epochs].sort((a, b) => a.epoch - b.epoch);
  return points.filter((p, i) => p.epoch > after && (i === points.length - 1 || points[i + 1].epoch !== p.epoch));
}

function traces(train, epochs) {
  const line = (color) => ({ color, width: 2 });
  const xy = (points, key) => ({ x: points.map((p) => p.epoch), y: points.map((p) => p[key]) });
  return [
    { name: 'train', ...xy(train, 'train_loss'), mode: 'lines',
      line: line(PALETTE[0]), xaxis: 'x', yaxis: 'y', legendgroup: 'train',
      hovertemplate: 'epoch %{x:.2f}<br>train loss %{y:.4f}<br>(mean over the epoch so far)<extra></extra>' },
    { name: 'test', ...xy(epochs, 'test_loss'), mode: 'lines+markers',
      line: line(PALETTE[1]), marker: { size: 6 }, xaxis: 'x', yaxis: 'y', legendgroup: 'test' },
    { name: 'train accuracy', ...xy(train, 'train_acc'), mode: 'lines',
      line: line(PALETTE[0]), xaxis: 'x2', yaxis: 'y2', legendgroup: 'train', showlegend: false,
      hovertemplate: 'epoch %{x:.2f}<br>train accuracy %{y:.2%}<br>(over the epoch so far)<extra></extra>' },
    { name: 'test accuracy', ...xy(epochs, 'test_acc'), mode: 'lines+markers',
      line: line(PALETTE[1]), marker: { size: 6 }, xaxis: 'x2', yaxis: 'y2', legendgroup: 'test', showlegend: false },
  ];
}

export class RunCurves {
  constructor(el, runId, { height = 240, emptyText = 'waiting for the first batches…' } = {}) {
    Object.assign(this, { el, runId, height, emptyText });
    this.drawn = null; // how much of the store's metrics the chart shows, once drawn
    this.unsubscribe = store.subscribe(({ type, id }) => {
      if (id === runId && this.drawn && (type === 'progress' || type === 'epoch')) this.extend();
    });
  }

  async load() {
    const { epochs, progress } = await store.loadMetrics(this.runId);
    if (!this.unsubscribe) return; // destroyed meanwhile
    const train = trainPoints(progress, epochs, -Infinity);
    this.empty = train.length === 0 && epochs.length === 0;
    const drawn = { epochs: epochs.length, progress: progress.length, lastX: train.at(-1)?.epoch ?? -Infinity };
    await Plotly.react(this.el, traces(train, epochs), this.layout(), CONFIG);
    if (!this.unsubscribe) return;
    this.drawn = drawn;
    this.extend(); // what arrived while drawing
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

  // Adds the points the store gained since the chart was last drawn.
  extend() {
    const held = store.metrics(this.runId);
    if (!held) return;
    const epochs = held.epochs.slice(this.drawn.epochs);
    const train = trainPoints(held.progress.slice(this.drawn.progress), epochs, this.drawn.lastX);
    this.drawn = { epochs: held.epochs.length, progress: held.progress.length, lastX: train.at(-1)?.epoch ?? this.drawn.lastX };
    const update = { x: [], y: [] };
    const indices = [];
    for (const [points, key, index] of [[train, 'train_loss', TRAIN_LOSS], [epochs, 'test_loss', TEST_LOSS],
      [train, 'train_acc', TRAIN_ACC], [epochs, 'test_acc', TEST_ACC]]) {
      if (!points.length) continue;
      update.x.push(points.map((p) => p.epoch));
      update.y.push(points.map((p) => p[key] ?? null));
      indices.push(index);
    }
    if (!indices.length) return;
    Plotly.extendTraces(this.el, update, indices);
    if (this.empty) {
      this.empty = false;
      Plotly.relayout(this.el, { annotations: [], 'xaxis.autorange': true, 'yaxis.autorange': true,
        'xaxis2.autorange': true, 'yaxis2.autorange': true });
    }
  }

  destroy() {
    this.unsubscribe?.();
    this.unsubscribe = null;
    Plotly.purge(this.el);
  }
}
