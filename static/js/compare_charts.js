// The Compare view's charts, drawn from its items (runs and groups of seeds, each with its
// colour and label): test accuracy and loss per epoch or wall time (a group as its mean with a
// ±1 std band), best accuracy against parameters with the Pareto front, against training time
// (whole run, per epoch, or to a target accuracy), and a bar per item on an axis zoomed to them.
//
//   item: {kind: 'run', id, run, metrics, ...} | {kind: 'group', key, group, ...}, each with
//         color, label, tag (the short text beside its point), best, params
/* global Plotly */

import { compact, esc, pct } from './format.js';
import { accuracyRange, axis, draw, fade, layout, logRange, logTicks, pixelMapper, placeLabels, zoomedTitle } from './plots.js';

const NOTES_EPOCHS = 10; // the notes timed 10-epoch runs, on their own (unknown) machine
const isNum = (v) => typeof v === 'number' && Number.isFinite(v);
const meanStd = (stat) => [stat?.mean ?? null, stat?.std ?? 0];
const tickSeconds = (v) => `${Number(v.toPrecision(2)).toLocaleString('en-US')} s`;

// Runs no other run beats with as few or fewer parameters: ascending params, rising accuracy.
export function paretoFront(points) {
  const sorted = [...points].filter((p) => p.params > 0 && typeof p.acc === 'number')
    .sort((a, b) => a.params - b.params || b.acc - a.acc);
  const front = [];
  for (const p of sorted) if (!front.length || p.acc > front[front.length - 1].acc) front.push(p);
  return front;
}

export function curveCharts(items, { x, logY }) {
  const wall = x === 'wall';
  const epochs = Math.max(0, ...items.map((i) => (i.kind === 'run' ? i.metrics.epochs.length : i.group.curve.length)));
  for (const [el, key, title] of [['compare-acc', 'test_acc', 'test accuracy'], ['compare-loss', 'test_loss', 'test loss']]) {
    const acc = key === 'test_acc';
    const bands = [];
    const lines = [];
    for (const item of items) {
      const { color, label } = item;
      if (item.kind === 'run') {
        const points = item.metrics.epochs;
        lines.push({ name: label, meta: { key: item.key }, x: points.map((e) => (wall ? e.wall_seconds : e.epoch)),
          y: points.map((e) => e[key]), mode: 'lines+markers', line: { color, width: 2 }, marker: { size: 6, color },
          hovertemplate: `%{y:${acc ? '.2%' : '.4f'}}<extra>${esc(label)}</extra>` });
        continue;
      }
      const curve = item.group.curve.filter((p) => isNum(p[key].mean));
      const xs = curve.map((p) => (wall ? p.wall_seconds.mean : p.epoch));
      const [mean, std] = [curve.map((p) => p[key].mean), curve.map((p) => p[key].std ?? 0)];
      // A loss band on a log axis cannot reach 0: its floor is a twentieth of the mean.
      const low = mean.map((m, i) => (logY && !acc ? Math.max(m - std[i], m / 20) : m - std[i]));
      bands.push({ name: `${label} ±1 std`, meta: { key: item.key, band: true }, x: [...xs, ...[...xs].reverse()],
        y: [...mean.map((m, i) => m + std[i]), ...low.reverse()], fill: 'toself', fillcolor: fade(color, 0.16),
        mode: 'lines', line: { width: 0 }, hoverinfo: 'skip', showlegend: false, legendgroup: item.key });
      lines.push({ name: label, meta: { key: item.key }, x: xs, y: mean, legendgroup: item.key,
        customdata: curve.map((p) => [p[key].std ?? 0, p[key].n]), mode: 'lines+markers',
        line: { color, width: 2.5 }, marker: { size: 8, color, symbol: 'diamond' },
        hovertemplate: `mean %{y:${acc ? '.2%' : '.4f'}} ± %{customdata[0]:${acc ? '.2%' : '.4f'}} (n=%{customdata[1]})`
          + `<extra>${esc(label)}</extra>` });
    }
    const xaxis = wall ? { rangemode: 'tozero', title: { text: 'seconds since the run started (groups: mean)' } }
      : { dtick: epochs <= 12 ? 1 : undefined, title: { text: 'epoch' } };
    const yaxis = acc ? { tickformat: '.2~%', autorangeoptions: { clipmin: 0, clipmax: 1 } }
      : (logY ? { type: 'log' } : { rangemode: 'nonnegative' });
    // The chips above are the legend: same names, same colours.
    draw(document.getElementById(el), [...bands, ...lines], layout({
      height: 320, uirevision: `${el}-${x}-${logY}`, showlegend: false,
      xaxis: axis(xaxis), yaxis: axis({ ...yaxis, title: { text: `${title}${!acc && logY ? ' (log scale)' : ''}` } }),
    }));
  }
}

// Time to `target` accuracy: the wall seconds of the first epoch that reached it, or null.
function secondsTo(target, points, acc, wall) {
  const hit = points.find((p) => isNum(acc(p)) && acc(p) >= target);
  return hit ? wall(hit) : null;
}

const TIME_MODES = {
  total: {
    title: 'training time, seconds (log scale)',
    note: () => `Whole runs. The notes' times are ${NOTES_EPOCHS}-epoch runs on their own machine.`,
    run: (r) => [r.total_seconds, 0],
    group: (g) => meanStd(g.total_seconds),
    notes: (p) => p.notes_seconds,
  },
  epoch: {
    title: 'seconds per epoch (log scale)',
    note: () => `Per epoch, so runs of different lengths compare. The notes' ${NOTES_EPOCHS}-epoch times are divided by ${NOTES_EPOCHS} (their machine).`,
    run: (r) => [r.epochs_done ? r.total_seconds / r.epochs_done : null, 0],
    group: (g) => meanStd(g.total_seconds).map((v) => (isNum(v) ? v / g.config.epochs : v)),
    notes: (p) => (isNum(p.notes_seconds) ? p.notes_seconds / NOTES_EPOCHS : null),
  },
  target: {
    title: 'seconds to the target accuracy (log scale)',
    note: (target) => `Seconds until test accuracy first reached ${pct(target, 1)}, the lowest best accuracy compared`
      + ' (groups: their mean curve). The notes and other runs have no curve here, so they are left out.',
  },
};

function timeOf(item, mode, target) {
  if (mode !== 'target') return item.kind === 'run' ? TIME_MODES[mode].run(item.run) : TIME_MODES[mode].group(item.group);
  if (item.kind === 'run') return [secondsTo(target, item.metrics.epochs, (e) => e.test_acc, (e) => e.wall_seconds), 0];
  const hit = item.group.curve.find((p) => isNum(p.test_acc.mean) && p.test_acc.mean >= target);
  return hit ? meanStd(hit.wall_seconds) : [null, 0];
}

// The items as points with error bars (groups: ± 1 std), one trace each; their labels are placed
// after drawing (labelPoints).
function itemTraces(items, xy, unit) {
  return items.map((item) => {
    const [[x, ex], [y, ey]] = xy(item);
    const group = item.kind === 'group';
    return {
      name: item.label, meta: { key: item.key, tag: item.tag }, x: [x], y: [y], mode: 'markers', showlegend: false,
      marker: { size: group ? 13 : 11, color: item.color, symbol: group ? 'diamond' : 'circle', line: { color: '#fff', width: 1 } },
      error_x: { type: 'data', array: [ex], visible: group && ex > 0, color: item.color, thickness: 1.5, width: 5 },
      error_y: { type: 'data', array: [ey], visible: group && ey > 0, color: item.color, thickness: 1.5, width: 5 },
      textfont: { size: 11, color: '#374151' }, cliponaxis: false,
      hovertemplate: `${esc(item.label)}<br>%{x:,.4~r} ${unit}<br>%{y:.2%}${group ? ` ± ${pct(ey)}` : ''}<extra></extra>`,
    };
  });
}

// Each item's tag beside its point where it fits clear of the others; else on hover only.
function labelPoints(el) {
  const indices = [];
  el.data.forEach((t, i) => { if (t.meta?.tag && isNum(t.x[0]) && isNum(t.y[0])) indices.push(i); });
  if (!indices.length || !el._fullLayout?._size) return;
  const { width, height, map } = pixelMapper(el);
  const point = (t) => map(t.x[0], t.y[0]);
  const obstacles = el.data.filter((t, i) => !indices.includes(i) && t.mode?.includes('markers'))
    .flatMap((t) => t.x.map((x, k) => (isNum(x) && isNum(t.y[k]) ? map(x, t.y[k]) : null)).filter(Boolean));
  const places = placeLabels(indices.map((i) => ({ ...point(el.data[i]), text: el.data[i].meta.tag })), { width, height, obstacles });
  Plotly.restyle(el, {
    mode: places.map((p) => (p ? 'markers+text' : 'markers')),
    text: indices.map((i, k) => (places[k] ? [el.data[i].meta.tag] : [])),
    textposition: places.map((p) => p || 'top center'),
  }, indices);
}

// The legend on top: below, a narrow chart's wrapped legend runs into the axis title.
async function drawScatter(el, data, lay) {
  await draw(el, data, { ...lay, legend: { orientation: 'h', y: 1.02, yanchor: 'bottom', x: 0, font: { size: 11 } } });
  labelPoints(el);
}

function accuracyAxis(values) {
  const { range } = accuracyRange(values, { step: 0.001 });
  return axis({ tickformat: '.1~%', title: { text: 'best test accuracy' }, range });
}

// As many ticks as the chart's width holds without crowding.
function logAxis(el, values, title, format) {
  const range = logRange(values) || [0, 1];
  const most = Math.max(3, Math.floor((el.clientWidth || 600) / 80));
  return axis({ type: 'log', range, title: { text: title }, ...logTicks(10 ** range[0], 10 ** range[1], format, most) });
}

export function scatterCharts(items, others, zoo, { tx }) {
  const datasets = [...new Set(items.map((i) => i.dataset))];
  const notes = zoo.filter((p) => datasets.includes(p.dataset) && isNum(p.notes_acc));
  const spread = (item) => (item.kind === 'group' ? meanStd(item.group.best_test_acc) : [item.best, 0]);

  const otherTrace = (xs) => ({
    name: 'other finished runs', x: xs, y: others.map((r) => r.best_test_acc), mode: 'markers',
    marker: { size: 7, color: 'rgba(107,114,128,0.35)' }, text: others.map((r) => `#${r.id} ${r.name}`),
    hovertemplate: '%{text}<br>%{x:,.4~r}<br>%{y:.2%}<extra></extra>',
  });
  const notesTrace = (xs, name) => ({
    name, x: xs, y: notes.map((p) => p.notes_acc), mode: 'markers',
    marker: { symbol: 'diamond-open', size: 9, color: '#b45309', line: { width: 1.5 } },
    text: notes.map((p) => p.id), hovertemplate: '%{text}<br>%{x:,.4~r}<br>%{y:.2%}<extra>notes</extra>',
  });
  const valuesOf = (traces, key) => traces.flatMap((t) => t[key].flatMap((v, i) => {
    const err = t[key === 'x' ? 'error_x' : 'error_y'];
    const e = err?.visible ? err.array[i] : 0;
    return isNum(v) ? [v - e, v + e] : [];
  }));

  // Accuracy against parameters, with the Pareto front of everything shown.
  const params = itemTraces(items, (i) => [[i.params, 0], spread(i)], 'params');
  const fronts = datasets.map((dataset, k) => {
    const points = [...others.filter((r) => r.dataset === dataset).map((r) => ({ params: r.params, acc: r.best_test_acc, text: `#${r.id} ${r.name}` })),
      ...items.filter((i) => i.dataset === dataset).map((i) => ({ params: i.params, acc: i.best, text: i.label }))];
    const front = paretoFront(points);
    return {
      name: `Pareto front${datasets.length > 1 ? ` (${dataset})` : ''}`, x: front.map((p) => p.params),
      y: front.map((p) => p.acc), mode: 'lines+markers', line: { shape: 'hv', dash: 'dot', color: ['#111827', '#6b7280'][k % 2], width: 1.5 },
      marker: { symbol: 'circle-open', size: 17, color: '#111827', line: { width: 1.5 } },
      text: front.map((p) => p.text), hovertemplate: '%{text}<br>%{x:,} params · %{y:.2%}<extra>Pareto front</extra>',
    };
  });
  const paramTraces = [otherTrace(others.map((r) => r.params)), notesTrace(notes.map((p) => p.params), "the notes' results"), ...fronts, ...params];
  const paramsEl = document.getElementById('compare-params');
  drawScatter(paramsEl, paramTraces, layout({
    height: 340, uirevision: 'compare-params',
    xaxis: logAxis(paramsEl, valuesOf(paramTraces, 'x'), 'parameters (log scale)', compact),
    yaxis: accuracyAxis(valuesOf(paramTraces, 'y')),
  }));

  // Accuracy against time, like with like.
  const mode = TIME_MODES[tx] ? tx : 'total';
  const target = Math.floor(Math.min(...items.map((i) => i.best).filter(isNum)) * 1000) / 1000;
  const times = itemTraces(items, (i) => [timeOf(i, mode, target), spread(i)], 's');
  const context = [];
  if (mode !== 'target') {
    const run = TIME_MODES[mode].run;
    context.push(otherTrace(others.map((r) => run(r)[0])));
    const noted = notesTrace(notes.map(TIME_MODES[mode].notes), `the notes' results (their machine${mode === 'epoch' ? ', ÷ 10' : ''})`);
    const keep = noted.x.map(isNum);
    for (const k of ['x', 'y', 'text']) noted[k] = noted[k].filter((_, i) => keep[i]);
    context.push(noted);
  }
  const timeTraces = [...context, ...times];
  document.getElementById('compare-time-note').textContent = TIME_MODES[mode].note(target);
  const timeEl = document.getElementById('compare-time');
  drawScatter(timeEl, timeTraces, layout({
    height: 340, uirevision: `compare-time-${mode}`,
    xaxis: logAxis(timeEl, valuesOf(timeTraces, 'x'), TIME_MODES[mode].title, tickSeconds),
    yaxis: accuracyAxis(valuesOf(timeTraces, 'y')),
  }));
}

export function bestChart(items, zoo) {
  const notesOf = new Map(zoo.map((p) => [p.id, p.notes_acc]));
  const runs = items.filter((i) => i.kind === 'run');
  const groups = items.filter((i) => i.kind === 'group');
  const notes = items.map((i) => (i.kind === 'run' ? i.run.notes_acc : i.group.notes_acc) ?? notesOf.get(i.model) ?? null);
  const errors = groups.map((g) => g.group.best_test_acc.std ?? 0);
  const zoom = accuracyRange([...items.map((i) => i.best), ...notes, ...groups.map((g, k) => g.best + errors[k])]);
  const bar = (list) => ({ type: 'bar', orientation: 'h', y: list.map((i) => i.label), x: list.map((i) => i.best),
    marker: { color: list.map((i) => i.color) }, textposition: 'inside', insidetextanchor: 'end', textfont: { color: '#fff' },
    meta: { keys: list.map((i) => i.key) } });
  draw(document.getElementById('compare-best'), [
    { ...bar(runs), name: 'best test accuracy', text: runs.map((i) => pct(i.best)), hovertemplate: '%{y}<br>%{x:.2%}<extra></extra>' },
    { ...bar(groups), name: 'mean best accuracy ± 1 std', customdata: errors, showlegend: groups.length > 0,
      error_x: { type: 'data', array: errors, color: '#111827', thickness: 1.5, width: 6 },
      hovertemplate: '%{y}<br>mean %{x:.2%} ± %{customdata:.2%}<extra></extra>' },
    // A group's figures beside its whisker, clear of it.
    { type: 'scatter', mode: 'text', y: groups.map((g) => g.label), x: groups.map((g, k) => g.best + errors[k]),
      text: groups.map((g, k) => `${pct(g.best)} ± ${pct(errors[k])}`), textposition: 'middle right',
      textfont: { size: 11, color: '#374151' }, showlegend: false, hoverinfo: 'skip', cliponaxis: false },
    { type: 'scatter', name: "the notes' result for the preset", y: items.map((i) => i.label), x: notes, mode: 'markers',
      marker: { symbol: 'line-ns-open', size: 26, color: '#b45309', line: { width: 3 } },
      hovertemplate: 'notes: %{x:.2%}<extra></extra>' },
  ], layout({
    height: 96 + 44 * items.length, uirevision: 'compare-best', bargap: 0.35, barmode: 'overlay',
    margin: { l: 16, r: 16, t: 8, b: 44 },
    yaxis: axis({ autorange: 'reversed', automargin: true, type: 'category', categoryorder: 'array',
      categoryarray: items.map((i) => i.label) }),
    xaxis: axis({ tickformat: '.1~%', range: zoom.range, title: { text: zoomedTitle('best test accuracy', zoom.note) } }),
    legend: { orientation: 'h', y: 1.02, yanchor: 'bottom', x: 1, xanchor: 'right' },
  }));
}
