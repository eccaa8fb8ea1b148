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
  pill.title = workers.map((w) => `${w.name} (${w.device || '?'}): ${w.status}${w.current_run_id ? ` #${w.current_run_id}` : ''}`).join('\n');
  banner.hidden = alive > 0;
  if (!alive) {
    const lost = workers.filter((w) => !w.alive).map((w) => esc(w.name));
    banner.innerHTML = '<strong>No worker is alive.</strong> Queued runs wait until one starts: '
      + 'run <code>zoolab worker</code> (or restart <code>zoolab serve</code>, which supervises one).'
      + (lost.length ? ` Last seen: ${lost.join(', ')}.` : '');
  }
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
  poll();
  setInterval(poll, POLL_MS);
  document.addEventListener('visibilitychange', poll);
}
