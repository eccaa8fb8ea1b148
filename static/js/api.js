// HTTP access to the zoolab server: JSON requests, the bearer token, readable errors.

const TOKEN_KEY = 'zoolab.token';

export class ApiError extends Error {
  constructor(status, detail) {
    super(describeDetail(detail) || `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }

  // FastAPI validation errors as [{field, msg}], the field taken from loc ["body", "epochs"].
  get fieldErrors() {
    if (!Array.isArray(this.detail)) return [];
    return this.detail.map((d) => ({
      field: Array.isArray(d.loc) && d.loc[0] === 'body' && d.loc.length > 1 ? String(d.loc[1]) : null,
      msg: d.msg || JSON.stringify(d),
      type: d.type,
    }));
  }
}

function describeDetail(detail) {
  if (detail === undefined || detail === null) return '';
  if (typeof detail === 'string') return detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => {
      const loc = Array.isArray(d.loc) ? d.loc.filter((p) => p !== 'body').join('.') : '';
      return loc ? `${loc}: ${d.msg}` : d.msg || JSON.stringify(d);
    }).join('; ');
  }
  return JSON.stringify(detail);
}

let tokenPrompt = null;

// One dialog at a time: concurrent 401s share the same answer.
function askToken() {
  if (tokenPrompt) return tokenPrompt;
  const dialog = document.getElementById('token-dialog');
  const input = document.getElementById('token-input');
  tokenPrompt = new Promise((resolve) => {
    input.value = '';
    dialog.returnValue = '';
    dialog.addEventListener('close', () => {
      tokenPrompt = null;
      const token = dialog.returnValue === 'ok' ? input.value.trim() : '';
      resolve(token || null);
    }, { once: true });
    document.getElementById('token-cancel').onclick = () => dialog.close('cancel');
    dialog.showModal();
    input.focus();
  });
  return tokenPrompt;
}

// ask: false answers a 401 with an ApiError instead of asking for the token (checks the page
// makes on its own, which should not interrupt the user).
export async function api(path, { method = 'GET', body, signal, ask = true } = {}, retried = false) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const token = localStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(path, {
    method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 401 && method !== 'GET' && ask) {
    if (retried) localStorage.removeItem(TOKEN_KEY); // refused: ask again next time
    else {
      const fresh = await askToken();
      if (fresh) {
        localStorage.setItem(TOKEN_KEY, fresh);
        return api(path, { method, body, signal }, true);
      }
    }
  }
  if (!res.ok) {
    let detail = res.statusText;
    try { detail = (await res.json()).detail ?? detail; } catch { /* not JSON */ }
    throw new ApiError(res.status, detail);
  }
  if (res.status === 204) return null;
  const type = res.headers.get('content-type') || '';
  return type.includes('json') ? res.json() : res.text();
}

export const post = (path, body) => api(path, { method: 'POST', body });

// An array is a repeated parameter (?tag=a&tag=b).
export function query(params) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (Array.isArray(v)) v.forEach((item) => qs.append(k, item));
    else if (v !== '' && v !== null && v !== undefined) qs.set(k, v);
  }
  const s = qs.toString();
  return s ? `?${s}` : '';
}

let zooPromise = null;
let optionsPromise = null;

export function loadZoo() {
  zooPromise ??= api('/zoo').catch((e) => { zooPromise = null; throw e; });
  return zooPromise;
}

// After a preset is saved, renamed or deleted.
export function reloadZoo() {
  zooPromise = null;
  return loadZoo();
}

export function loadOptions() {
  optionsPromise ??= api('/zoo/options').catch((e) => { optionsPromise = null; throw e; });
  return optionsPromise;
}

// The smallest seed that no run of the run's group has (GET /groups?group=KEY lists its seeds),
// so a re-run adds a seed to the group. Two re-runs at the same moment may pick the same one.
async function freeSeed(run) {
  const { items } = await api(`/groups${query({ group: run.group_key, limit: 1 })}`);
  const used = new Set(items[0]?.seeds ?? [run.config?.seed ?? 0]);
  let seed = 0;
  while (used.has(seed)) seed += 1;
  return seed;
}

// Launch a copy of a run with a new seed: its stored config is the request. Keys the stored
// config holds but POST /runs does not accept (the server says which: "extra_forbidden") are
// dropped once.
export async function relaunch(run) {
  const body = { ...(run.config || {}), model: run.model, seed: await freeSeed(run) };
  try {
    return await post('/runs', body);
  } catch (e) {
    const extra = e instanceof ApiError ? e.fieldErrors.filter((f) => f.type === 'extra_forbidden') : [];
    if (!extra.length || extra.length !== e.fieldErrors.length) throw e;
    for (const f of extra) delete body[f.field];
    return post('/runs', body);
  }
}
