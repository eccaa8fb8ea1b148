// The page's state lives in the URL hash (#view=compare&sel=3,7&sort=params...), so a reload
// or a shared link restores it. Views read it with readState() and change it with setState().
// The runs table's filters on the run config are `config.KEY=VALUE` params, held as state.config.

const DEFAULTS = {
  view: 'runs',
  sel: [],          // selected run ids, for Compare
  dataset: '',      // runs table filters
  status: '',
  q: '',
  tag: '',          // tags a run must all hold, comma-separated
  cols: '',         // picked columns of the runs table: config keys and `changes`, comma-separated
  grouped: '',      // '1': the runs table shows groups of seeds
  config: {},       // filters on the run config: {lr: '0.001..0.01'}
  sort: 'id',
  order: 'desc',
  offset: 0,
  limit: 50,
  run: null,        // run detail id
  x: 'epoch',       // compare x axis: epoch | wall
  groups: [],       // compared groups of seeds, by group_key
  ctx: 'data',      // compare context: none | data (same training data) | groups | dataset | tag:<tag>
  tx: 'total',      // compare time axis: total | epoch (per epoch) | target (to a target accuracy)
  logy: '',         // '1': loss on a log scale (compare, run detail)
  smooth: 0,        // run detail: train-curve smoothing, 0 (off) to 0.99
  ds: '',           // launch: dataset
  preset: '',       // launch: preset id
  sweep: null,      // sweeps: the sweep shown (none: the list)
  from: null,       // launch: the run the form starts from ("Edit & launch"), recorded as parent
  lds: '',          // lineage: dataset
  rds: '',          // reproduction: dataset, and the recipe: epochs, subsets, seeds wanted
  repochs: null,
  rtrain: null,
  rtest: null,
  rseeds: 3,
};

const INTS = new Set(['offset', 'limit', 'run', 'sweep', 'from', 'repochs', 'rtrain', 'rtest', 'rseeds']);

export function readState() {
  const params = new URLSearchParams(location.hash.replace(/^#/, ''));
  const state = { ...DEFAULTS, sel: [], groups: [], config: {} };
  for (const [key, raw] of params) {
    if (key.startsWith('config.')) state.config[key.slice(7)] = raw;
    if (!(key in DEFAULTS) || key === 'config') continue;
    if (key === 'sel') {
      state.sel = [...new Set(raw.split(',').map(Number).filter((n) => Number.isInteger(n) && n > 0))];
    } else if (key === 'groups') {
      state.groups = [...new Set(raw.split(',').filter((k) => /^[0-9a-f]{16}$/.test(k)))];
    } else if (key === 'smooth') {
      const n = Number(raw);
      if (n >= 0 && n < 1) state.smooth = n;
    } else if (INTS.has(key)) {
      const n = Number(raw);
      if (Number.isInteger(n) && n >= 0) state[key] = n;
    } else {
      state[key] = raw;
    }
  }
  return state;
}

export function stateHash(state) {
  const params = new URLSearchParams();
  for (const [key, def] of Object.entries(DEFAULTS)) {
    const v = state[key];
    if (key === 'sel' || key === 'groups') {
      if (v && v.length) params.set(key, v.join(','));
    } else if (key === 'config') {
      for (const [k, text] of Object.entries(v || {})) if (text) params.set(`config.${k}`, text);
    } else if (key === 'view' || (v !== def && v !== null && v !== undefined && v !== '')) {
      params.set(key, v);
    }
  }
  return `#${params.toString().replace(/%2C/g, ',')}`;
}

// push: a new history entry (changing view); otherwise replace (filters, selection).
export function setState(patch, { push = false } = {}) {
  const next = { ...readState(), ...patch };
  const hash = stateHash(next);
  if (hash !== location.hash) {
    history[push ? 'pushState' : 'replaceState'](null, '', hash);
  }
  window.dispatchEvent(new CustomEvent('zoolab:state', { detail: next }));
  return next;
}

export function onStateChange(fn) {
  window.addEventListener('zoolab:state', (e) => fn(e.detail));
  window.addEventListener('hashchange', () => fn(readState()));
}

export function hrefFor(patch) {
  return stateHash({ ...readState(), ...patch });
}
