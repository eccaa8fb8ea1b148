// Small pieces shared by the views: status badges, progress bars, run actions, toasts.

import { relaunch } from './api.js';
import { esc, ordinal, pct, seconds } from './format.js';
import * as store from './store.js';
import { toast } from './toasts.js';

export { toast };

export const ACTIVE = new Set(['queued', 'running']);

export function statusBadge(run) {
  const s = run.status;
  const cancelling = run.cancel_requested && ACTIVE.has(s) ? ' · cancelling' : '';
  const title = run.error ? ` title="${esc(run.error)}"` : '';
  return `<span class="badge status-${esc(s)}" data-testid="status-${run.id}" data-run="${run.id}"`
    + ` data-status="${esc(s)}"${title}>${esc(s)}${cancelling}</span>`;
}

// Where a queued or running run stands: place in the queue, or epoch k of N, position in the
// epoch and time left.
export function progressHtml(run) {
  if (run.status === 'queued') {
    const place = run.queue_position ? `${ordinal(run.queue_position)} in queue` : 'queued';
    return `<div class="queue-place" data-testid="queue-${run.id}">${place}</div>`;
  }
  if (run.status !== 'running') return '';
  const total = run.epochs_total || run.config?.epochs || 0;
  const done = run.epochs_done || 0;
  const within = Math.min(Math.max(run.epoch_progress || 0, 0), 1);
  const overall = total ? Math.min((done + within) / total, 1) : 0;
  const current = total ? Math.min(done + 1, total) : done + 1;
  const eta = run.eta_seconds !== null && run.eta_seconds !== undefined ? ` · ${seconds(run.eta_seconds)} left` : '';
  const text = `Epoch ${current} of ${total || '?'} · ${Math.round(within * 100)}% of epoch${eta}`;
  return `<div class="progress" data-testid="progress-${run.id}" title="${esc(pct(overall, 0))} of the run">`
    + `<div class="bar" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow="${Math.round(overall * 100)}">`
    + `<span style="width:${(overall * 100).toFixed(1)}%"></span></div>`
    + `<div class="progress-text">${esc(text)}</div></div>`;
}

export function actionButtons(run, { small = true, withDelete = false } = {}) {
  const cls = small ? 'btn btn-small' : 'btn';
  const b = (action, label, extra = '') => `<button type="button" class="${cls} ${extra}" data-action="${action}"`
    + ` data-run="${run.id}" data-testid="${action}-${run.id}">${label}</button>`;
  const out = [];
  if (ACTIVE.has(run.status) && !run.cancel_requested) out.push(b('cancel', 'Cancel', 'btn-danger'));
  if (run.status === 'failed' || run.status === 'cancelled') out.push(b('retry', 'Retry'));
  out.push(b('rerun', 'Re-run'));
  if (withDelete && run.status !== 'running') out.push(b('delete', 'Delete', 'btn-danger'));
  return out.join('');
}

// Runs a row / card / detail action; the store applies its result, once for every view. Returns
// the Run answered, {deleted, id} after a delete, or null when nothing changed.
async function performAction(action, run) {
  try {
    if (action === 'rerun') {
      const r = await relaunch(run);
      store.launched(r);
      toast(`Queued #${r.id} (${r.name}), a re-run of #${run.id} with seed ${r.config?.seed}.`);
      return r;
    }
    if (action === 'delete' && !confirm(`Delete run #${run.id} (${run.name}) and its artifacts?`)) return null;
    const r = await store.act(run.id, action);
    toast({ cancel: `Cancel requested for #${run.id}.`, retry: `#${run.id} is queued again.`,
      delete: `Deleted #${run.id}.` }[action]);
    return action === 'delete' ? { deleted: true, id: run.id } : r;
  } catch (e) {
    toast(`${action} #${run.id}: ${e.message}`, 'error');
    return null;
  }
}

// The action buttons (data-action, data-run) in `root`; then(result, run): the view's next step.
export function bindActions(root, then = () => {}) {
  root.addEventListener('click', async (e) => {
    const button = e.target.closest('button[data-action]');
    const run = button && store.get(Number(button.dataset.run));
    if (!run) return;
    button.disabled = true;
    const result = await performAction(button.dataset.action, run);
    button.disabled = false;
    if (result) then(result, run);
  });
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
