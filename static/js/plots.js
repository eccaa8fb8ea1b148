// Plotly defaults shared by every chart: one look, one palette, no Plotly logo.
/* global Plotly */

export const PALETTE = ['#2563eb', '#dc2626', '#059669', '#d97706', '#7c3aed',
  '#0891b2', '#db2777', '#65a30d', '#475569', '#ea580c'];

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
