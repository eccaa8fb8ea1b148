// The page's one copy of the runs. Runs the page fetched (a page of the table, one run) or an
// action answered with are held here by id, and every server event (events.js) is applied to
// them here and nowhere else. Views subscribe, read what they show with get(id) and render;
// they never merge events themselves.
//
//   get(id)            the run, or undefined; metrics(id): its metrics, once loaded
//   fetchRun(id)       GET /runs/{id}, stored; resolves to the run (rejects with an ApiError)
//   fetchPage(params)  GET /runs?params (filters, sort and paging happen on the server), every
//                      item stored; resolves to the page, its items being the stored runs
//   act(id, action)    'cancel' or 'retry' (resolves to the run answered, stored) or 'delete'
//   launched(run)      a run this page created (launch form, re-run): stored, and said so
//   loadMetrics(id)    GET /runs/{id}/metrics once, then kept current by events; resolves to
//                      {epochs, progress}: arrays of points, in the order recorded, that only grow
//   subscribe(fn)      fn({type, id, run}) after each change; returns the unsubscribe function.
//     type: 'status' (an event with the whole run; new runs come so), 'progress' or 'epoch'
//     (fields patched, metrics grown), 'put' (a fetch or an action's answer changed it),
//     'launched' or 'deleted'. run is undefined after a delete, and for an event of a run
//     the store does not hold.
//
// Answers and events race: an answer can be older than an event already applied, and the stream
// can deliver an event after a page that includes it. So each run keeps the id of the last event
// it reflects (a page's and the metrics' last_event_id say theirs); nothing older overwrites it.

import { api, post, query } from './api.js';
import { listen } from './events.js';

const runs = new Map();
const versions = new Map(); // run id -> the id of the last event the held run reflects
const metricsOf = new Map(); // run id -> {promise, early, held}: the fetch, events before it ends, metrics
const subscribers = new Set();
let heard = 0; // the id of the last event received: an answer reflects at least those before it

export const get = (id) => runs.get(id);
export const metrics = (id) => metricsOf.get(id)?.held;

export function subscribe(fn) {
  subscribers.add(fn);
  return () => subscribers.delete(fn);
}

function notify(type, id) {
  const change = { type, id, run: runs.get(id) };
  for (const fn of subscribers) {
    try { fn(change); } catch (err) { reportError(err); } // one broken view leaves the others
  }
}

// A run the server answered with, reflecting the events up to `since`.
function put(run, since) {
  const held = runs.get(run.id);
  if (versions.get(run.id) > since) return held;
  versions.set(run.id, since);
  const next = { ...held, ...run };
  runs.set(run.id, next);
  if (JSON.stringify(next) !== JSON.stringify(held)) notify('put', run.id);
  return next;
}

const answer = (request, since = heard) => request.then((run) => put(run, since));

function remove(id) {
  for (const map of [runs, versions, metricsOf]) map.delete(id);
  notify('deleted', id);
}

export const fetchRun = (id) => answer(api(`/runs/${id}`));

export async function fetchPage(params) {
  const page = await api(`/runs${query(params)}`);
  return { ...page, items: page.items.map((run) => put(run, page.last_event_id)) };
}

export async function act(id, action) {
  if (action !== 'delete') return answer(post(`/runs/${id}/${action}`));
  await api(`/runs/${id}`, { method: 'DELETE' });
  remove(id);
  return null;
}

export function launched(run) {
  if (!runs.has(run.id)) runs.set(run.id, run); // else its events came first, and are newer
  notify('launched', run.id);
}

export function loadMetrics(id) {
  if (!metricsOf.has(id)) {
    const entry = { early: [] };
    entry.promise = api(`/runs/${id}/metrics`).then(({ epochs, progress, last_event_id }) => {
      entry.held = { epochs, progress, since: last_event_id };
      for (const [type, point, eventId] of entry.early) append(entry.held, type, point, eventId);
      return entry.held;
    }, (e) => { metricsOf.delete(id); throw e; });
    metricsOf.set(id, entry);
  }
  return metricsOf.get(id).promise;
}

function append(held, type, point, eventId) {
  if (eventId > held.since) (type === 'epoch' ? held.epochs : held.progress).push(point);
}

// The run fields a progress or epoch event changes.
function patch(run, type, d) {
  const next = { ...run };
  if (type === 'progress') {
    next.epochs_done = Math.floor(d.epoch);
    next.epoch_progress = d.epoch - Math.floor(d.epoch);
    if (d.eta_seconds !== undefined) next.eta_seconds = d.eta_seconds;
  } else {
    next.epochs_done = Math.max(run.epochs_done || 0, d.epoch);
    next.epoch_progress = 0;
    next.final_test_acc = d.test_acc;
    if (typeof d.test_acc === 'number') next.best_test_acc = Math.max(run.best_test_acc ?? 0, d.test_acc);
    if (d.images_per_second !== undefined) next.images_per_second = d.images_per_second;
    if (d.wall_seconds !== undefined) next.total_seconds = d.wall_seconds;
  }
  if (next.status === 'queued') next.status = 'running'; // its status event is on the way
  return next;
}

function apply(type, d, eventId) {
  heard = eventId;
  const id = type === 'status' ? d.id : d.run_id;
  if (type === 'deleted') {
    remove(id);
    return;
  }
  if (type !== 'status') {
    const entry = metricsOf.get(id);
    if (entry?.held) append(entry.held, type, d, eventId);
    else entry?.early.push([type, d, eventId]);
  }
  const held = runs.get(id);
  if ((held || type === 'status') && !(versions.get(id) >= eventId)) {
    runs.set(id, type === 'status' ? { ...held, ...d } : patch(held, type, d));
    versions.set(id, eventId);
  }
  notify(type, id);
}

listen(apply);
