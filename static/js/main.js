// The zoolab dashboard: one page, one module per view, the state in the URL hash.
// Served by the FastAPI app as / and /static/...; Plotly comes from /static/vendor/plotly.min.js.

import * as compare from './compare.js';
import * as detail from './detail.js';
import * as launch from './launch.js';
import * as lineage from './lineage.js';
import { fitCharts } from './plots.js';
import * as reproduction from './reproduction.js';
import * as runs from './runs.js';
import { onStateChange, readState, setState } from './state.js';
import * as store from './store.js';
import * as sweeps from './sweeps.js';
import { debounce } from './widgets.js';
import * as workers from './workers.js';

const VIEWS = { launch, runs, compare, detail, sweeps, lineage, reproduction };
let currentView = null;

function route(state) {
  const name = state.view in VIEWS ? state.view : 'runs';
  if (currentView && currentView !== name) VIEWS[currentView].hide?.();
  for (const section of document.querySelectorAll('section.view')) section.hidden = section.dataset.view !== name;
  for (const tab of document.querySelectorAll('.tabs a[data-view]')) {
    if (tab.dataset.view === name) tab.setAttribute('aria-current', 'page');
    else tab.removeAttribute('aria-current');
  }
  const count = document.getElementById('nav-compare-count');
  const compared = state.sel.length + state.groups.length;
  count.hidden = compared === 0;
  count.textContent = String(compared);
  const navDetail = document.getElementById('nav-detail');
  navDetail.hidden = !state.run;
  if (state.run) {
    navDetail.textContent = `Run #${state.run}`;
    navDetail.href = `#view=detail&run=${state.run}`;
  }
  if (name !== 'detail') document.title = 'zoolab';
  currentView = name;
  VIEWS[name].show(state);
  fitCharts(document.querySelector(`section.view[data-view="${name}"]`));
  document.body.dataset.view = name;
}

// Links carry plain hrefs (open in a new tab works); a plain click keeps the rest of the state.
function onClick(e) {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const tab = e.target.closest('.tabs a[data-view]');
  const go = e.target.closest('a[data-go-view]');
  if (!tab && !go) return;
  e.preventDefault();
  if (tab) setState({ view: tab.dataset.view }, { push: true });
  else if (go.dataset.goFrom) setState({ view: go.dataset.goView, from: Number(go.dataset.goFrom) }, { push: true });
  else setState({ view: go.dataset.goView, run: go.dataset.goRun ? Number(go.dataset.goRun) : null }, { push: true });
}

function start() {
  runs.init();
  compare.init();
  detail.init();
  sweeps.init();
  launch.init();
  lineage.init();
  reproduction.init();
  workers.init();
  const refreshWorkers = debounce(workers.poll, 300); // a claim or an end changes a worker's state
  store.subscribe(({ type }) => { if (type === 'status') refreshWorkers(); });
  document.addEventListener('click', onClick);
  onStateChange(route);
  route(readState());
  document.body.dataset.ready = 'true';
}

start();
