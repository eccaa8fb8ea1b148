// Worker health in the header: polls GET /health and GET /workers every few seconds and says
// plainly when no worker is alive (queued runs then wait).

import { api } from './api.js';
import { esc } from './format.js';

const POLL_MS = 4000;

function render(health, workers) {
  const pill = document.getElementById('worker-status');
  const banner = document.getElementById('no-worker-banner');
  if (!health) {
    pill.textContent = 'server unreachable';
    pill.className = 'pill pill-bad';
    pill.dataset.alive = '0';
    banner.hidden = false;
    banner.textContent = 'The server does not answer. The page will reconnect when it is back.';
    return;
  }
  const alive = health.workers_alive ?? workers.filter((w) => w.alive).length;
  const busy = workers.filter((w) => w.alive && w.current_run_id != null);
  pill.dataset.alive = String(alive);
  pill.className = `pill ${alive ? 'pill-ok' : 'pill-bad'}`;
  pill.textContent = alive
    ? `${alive} worker${alive > 1 ? 's' : ''}${busy.length ? ` · ${busy.length} busy` : ' · idle'}`
    : 'no worker';
  pill.title = 'Workers: click for their devices';
  renderPanel(workers);
  banner.hidden = alive > 0;
  if (!alive) {
    const lost = workers.filter((w) => !w.alive).map((w) => esc(w.name));
    banner.innerHTML = '<strong>No worker is alive.</strong> Queued runs wait until one starts: '
      + 'run <code>zoolab worker</code> (or restart <code>zoolab serve</code>, which supervises one).'
      + (lost.length ? ` Last seen: ${lost.join(', ')}.` : '');
  }
}

function gib(bytes) {
  return typeof bytes === 'number' ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : '—';
}

// The workers, alive first: device, memory (a GPU's, or the worker process's on a CPU), GPU use.
function renderPanel(workers) {
  const rows = [...workers].sort((a, b) => Number(b.alive) - Number(a.alive)).map((w) => `
    <tr data-testid="worker-${esc(w.name)}" class="${w.alive ? '' : 'muted'}">
      <td>${esc(w.name)}</td><td>${esc(w.device || '?')}</td>
      <td class="num">${gib(w.memory_used_bytes)} of ${gib(w.memory_total_bytes)}</td>
      <td class="num">${typeof w.utilization === 'number' ? `${Math.round(w.utilization)}%` : '—'}</td>
      <td>${esc(w.alive ? w.status : `${w.status} (not alive)`)}${w.current_run_id ? ` #${w.current_run_id}` : ''}</td>
    </tr>`).join('');
  document.getElementById('workers-panel').innerHTML = workers.length
    ? `<table class="kv-table"><thead><tr><th>worker</th><th>device</th><th>memory</th><th>GPU use</th>
       <th>status</th></tr></thead><tbody>${rows}</tbody></table>` : '<p class="muted">No worker has started yet.</p>';
}

export async function poll() {
  if (document.hidden) return;
  try {
    const [health, workers] = await Promise.all([api('/health'), api('/workers').catch(() => [])]);
    render(health, Array.isArray(workers) ? workers : []);
  } catch {
    render(null, []);
  }
}

export function init() {
  const pill = document.getElementById('worker-status');
  const panel = document.getElementById('workers-panel');
  pill.addEventListener('click', () => { panel.hidden = !panel.hidden; });
  poll();
  setInterval(poll, POLL_MS);
  document.addEventListener('visibilitychange', poll);
}
