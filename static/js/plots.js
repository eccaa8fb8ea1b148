// Plotly defaults shared by every chart: one look, no Plotly logo; a run's colour (from its id,
// so it keeps it everywhere), axes zoomed to the data, log ticks that read as values, and
// point labels that stay out of each other's way.
/* global Plotly */

// Twenty colours, ordered so that neighbours differ most: runs with consecutive ids (a batch
// of seeds, a chronology) never share a colour, whatever else is selected.
export const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#e377c2', '#8c564b',
  '#b5b619', '#0b2e6b', '#7a0019', '#0b5d1e', '#a3007d', '#00838f', '#a65e00', '#4527a0', '#5c6300',
  '#f06060', '#37474f', '#c51162'];

export const runColor = (id) => PALETTE[Math.abs(Math.trunc(id)) % PALETTE.length];

// A group of seeds by its key (16 hex digits): stable across selections like a run's.
export const groupColor = (key) => PALETTE[parseInt(key.slice(-6), 16) % PALETTE.length];

export function fade(color, alpha) {
  const n = parseInt(color.slice(1), 16);
  return `rgba(${n >> 16},${(n >> 8) & 255},${n & 255},${alpha})`;
}

export const CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ['lasso2d', 'select2d'] };

const AXIS = { gridcolor: '#e5e7eb', zerolinecolor: '#d1d5db', linecolor: '#d1d5db', automargin: true };

export function axis(extra = {}) {
  return { ...AXIS, ...extra };
}

export function layout(extra = {}) {
  return {
    font: { family: 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif', size: 12, color: '#1f2937' },
    paper_bgcolor: 'rgba(0,0,0,0)',
    plot_bgcolor: '#ffffff',
    margin: { l: 56, r: 16, t: 12, b: 44 },
    legend: { orientation: 'h', y: -0.22, x: 0, font: { size: 11 } },
    hovermode: 'closest',
    ...extra,
  };
}

export function draw(el, data, lay) {
  return Plotly.react(el, data, lay, CONFIG);
}

// Charts drawn while their view was hidden have no width; fit them once shown.
export function fitCharts(root) {
  for (const el of root.querySelectorAll('.js-plotly-plot')) {
    if (el.offsetParent !== null) Plotly.Plots.resize(el);
  }
}

// An accuracy axis zoomed to `values` (fractions): 95.52% and 96.84% must not look alike, so the
// axis starts near the data, on a round number, and says so. Returns {range, note}.
export function accuracyRange(values, { step = 0.005 } = {}) {
  const xs = values.filter((v) => typeof v === 'number' && Number.isFinite(v));
  if (!xs.length) return { range: [0, 1], note: '' };
  const lo = Math.min(...xs);
  const hi = Math.max(...xs);
  const pad = Math.max((hi - lo) * 0.25, step);
  const start = Math.max(0, Math.floor((lo - pad) / step) * step);
  const end = Math.min(1, Math.ceil((hi + pad / 2) / step) * step);
  return { range: [start, end], note: start > 0 ? `axis starts at ${(start * 100).toFixed(1)}%, not 0` : '' };
}

// An axis title with the zoom's note on a line of its own, smaller.
export function zoomedTitle(text, note) {
  return note ? `${text}<br><span style="font-size:11px;color:#6b7280">${note}</span>` : text;
}

// Ticks of a log axis from `lo` to `hi` as whole values ("20k", "50k", "100k"): Plotly's own
// minor labels ("2", "5") read as data. As many as fit (`most`), at the finest steps that do.
const MANTISSAS = [[1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9], [1, 1.5, 2, 3, 5, 7], [1, 2, 5], [1, 3], [1]];

export function logTicks(lo, hi, format, most = 8) {
  const within = (mantissas) => {
    const vals = [];
    for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e += 1) {
      for (const m of mantissas) {
        const v = Number((m * 10 ** e).toPrecision(3));
        if (v >= lo && v <= hi) vals.push(v);
      }
    }
    return vals;
  };
  const tickvals = MANTISSAS.map(within).find((vals) => vals.length <= most) ?? within([1]);
  return { tickmode: 'array', tickvals, ticktext: tickvals.map(format) };
}

// A log axis range (Plotly's, in decades) around positive `values`, padded by `pad` decades.
export function logRange(values, pad = 0.12) {
  const xs = values.filter((v) => typeof v === 'number' && v > 0);
  if (!xs.length) return null;
  const lo = Math.log10(Math.min(...xs));
  const hi = Math.log10(Math.max(...xs));
  const extra = Math.max(pad, (hi - lo) * 0.06);
  return [lo - extra, hi + extra];
}

const POSITIONS = ['top center', 'bottom center', 'middle right', 'middle left',
  'top right', 'top left', 'bottom right', 'bottom left'];

function labelBox(p, position, w, h, r) {
  const [v, hz] = position.split(' ');
  const x = hz === 'center' ? p.x - w / 2 : hz === 'right' ? p.x + r : p.x - r - w;
  const y = v === 'middle' ? p.y - h / 2 : v === 'top' ? p.y - r - h : p.y + r;
  return { x0: x, y0: y, x1: x + w, y1: y + h };
}

const overlaps = (a, b) => a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;

// Where each point's label goes so that no two labels and no label and marker overlap, within
// the plot area: a textposition, or null when none fits (the label then shows on hover only).
// points: [{x, y, text}] in pixels from the plot area's top left; obstacles: other markers.
export function placeLabels(points, { width, height, obstacles = [], charWidth = 6.2, lineHeight = 13, radius = 7 }) {
  const taken = [...points, ...obstacles].map((p) => ({ x0: p.x - radius, y0: p.y - radius, x1: p.x + radius, y1: p.y + radius }));
  return points.map((p) => {
    const w = p.text.length * charWidth;
    for (const position of POSITIONS) {
      const box = labelBox(p, position, w, lineHeight, radius);
      const inside = box.x0 >= 0 && box.y0 >= 0 && box.x1 <= width && box.y1 <= height;
      if (inside && !taken.some((t) => overlaps(box, t))) {
        taken.push(box);
        return position;
      }
    }
    return null;
  });
}

// Pixel position of data (x, y) in a drawn chart's plot area (log axes in decades, as Plotly).
export function pixelMapper(el) {
  const full = el._fullLayout;
  const { w, h } = full._size;
  const lin = (ax, v) => (ax.type === 'log' ? Math.log10(v) : v);
  const at = (ax, v, length) => ((lin(ax, v) - ax.range[0]) / (ax.range[1] - ax.range[0])) * length;
  return { width: w, height: h, map: (x, y) => ({ x: at(full.xaxis, x, w), y: h - at(full.yaxis, y, h) }) };
}
