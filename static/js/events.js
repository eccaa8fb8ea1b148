// Server-Sent Events. One EventSource on GET /events feeds the store, which applies each event
// for every view (a browser allows only six connections per host over HTTP/1.1, so the page
// opens one). EventSource reconnects by itself and sends Last-Event-ID, so nothing is missed.

function setIndicator(state) {
  const el = document.getElementById('live-indicator');
  el.textContent = state === 'open' ? 'live' : 'reconnecting…';
  el.className = `pill ${state === 'open' ? 'pill-ok' : 'pill-warn'}`;
  el.dataset.state = state;
}

// Calls onEvent(type, data, id) for every event of every run; ids grow with time.
export function listen(onEvent) {
  const source = new EventSource('/events');
  source.addEventListener('open', () => setIndicator('open'));
  source.addEventListener('error', () => setIndicator(source.readyState === EventSource.OPEN ? 'open' : 'closed'));
  for (const type of ['status', 'epoch', 'progress', 'deleted']) {
    source.addEventListener(type, (e) => {
      let data;
      try { data = JSON.parse(e.data); } catch { return; }
      onEvent(type, data, Number(e.lastEventId));
    });
  }
}
