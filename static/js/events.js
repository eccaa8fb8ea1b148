// Server-Sent Events. One EventSource on GET /events feeds every view (a browser allows only
// six connections per host over HTTP/1.1, so views share it rather than each opening one);
// the run detail view opens GET /runs/{id}/events for the run it shows.
// EventSource reconnects by itself and sends Last-Event-ID, so nothing is missed.

const TYPES = ['status', 'epoch', 'progress', 'deleted'];
const listeners = new Set();
let source = null;

function parse(e) {
  try { return JSON.parse(e.data); } catch { return null; }
}

function setIndicator(state) {
  const el = document.getElementById('live-indicator');
  if (!el) return;
  el.textContent = state === 'open' ? 'live' : 'reconnecting…';
  el.className = `pill ${state === 'open' ? 'pill-ok' : 'pill-warn'}`;
  el.dataset.state = state;
}

function open() {
  source = new EventSource('/events');
  source.addEventListener('open', () => setIndicator('open'));
  source.addEventListener('error', () => setIndicator(source.readyState === EventSource.OPEN ? 'open' : 'closed'));
  for (const type of TYPES) {
    source.addEventListener(type, (e) => {
      const data = parse(e);
      if (!data) return;
      for (const fn of listeners) {
        try { fn(type, data); } catch (err) { console.error(err); }
      }
    });
  }
}

// fn(type, data) for every event of every run. Returns an unsubscribe function.
export function subscribe(fn) {
  listeners.add(fn);
  if (!source) open();
  return () => listeners.delete(fn);
}

// fn(type, data) for one run's events. Returns a function that closes the stream.
export function openRunStream(runId, fn) {
  const stream = new EventSource(`/runs/${runId}/events`);
  for (const type of TYPES) {
    stream.addEventListener(type, (e) => {
      const data = parse(e);
      if (data) fn(type, data);
    });
  }
  return () => stream.close();
}
