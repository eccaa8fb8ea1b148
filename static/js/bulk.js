// The bulk bar of the runs table: the runs selected (ticked, or every run matching the table's
// filters: GET /runs/ids), and cancel, retry, delete, tag or untag them all at once (POST
// /runs/bulk, in requests of at most BULK_MAX ids). The answer says what was done and what
// was skipped, and why; the table follows by the events.

import { api, post, query } from './api.js';
import { int } from './format.js';
import { parseTags } from './labels.js';
import { readState, setState } from './state.js';
import { toast } from './widgets.js';

const BULK_MAX = 1000; // ids per request (app/api/bulk.py)
const DONE = { cancel: 'Cancel requested for', retry: 'Queued again', delete: 'Deleted', tag: 'Tagged', untag: 'Untagged' };

const $ = (id) => document.getElementById(id);
const runs = (n) => `${int(n)} run${n === 1 ? '' : 's'}`;

// Every run that matches `filterParams` joins the selection.
export async function selectMatching(filterParams) {
  const { ids, total } = await api(`/runs/ids${query(filterParams)}`);
  setState({ sel: [...new Set([...readState().sel, ...ids])] });
  if (ids.length < total) toast(`Selected the first ${int(ids.length)} of ${int(total)} matching runs.`, 'error');
}

function summary(action, done, skipped) {
  const why = new Map();
  for (const { id, reason } of skipped) why.set(reason, [...(why.get(reason) || []), id]);
  const list = (ids) => `#${ids.slice(0, 5).join(', #')}${ids.length > 5 ? ` and ${ids.length - 5} more` : ''}`;
  const skip = [...why].map(([reason, ids]) => `${list(ids)}: ${reason}`).join('; ');
  return `${DONE[action]} ${runs(done.length)}.${skipped.length ? ` Skipped ${runs(skipped.length)} (${skip}).` : ''}`;
}

async function perform(action) {
  const ids = readState().sel;
  const tags = action === 'tag' || action === 'untag' ? parseTags($('bulk-tags').value) : null;
  if (tags && !tags.length) {
    toast(`Type the tags to ${action === 'tag' ? 'add' : 'remove'} first.`, 'error');
    $('bulk-tags').focus();
    return;
  }
  if (action === 'delete' && !confirm(`Delete ${runs(ids.length)} and their artifacts?`)) return;
  const done = [];
  const skipped = [];
  try {
    for (let i = 0; i < ids.length; i += BULK_MAX) {
      const answer = await post('/runs/bulk', { ids: ids.slice(i, i + BULK_MAX), action, ...(tags ? { tags } : {}) });
      done.push(...answer.done);
      skipped.push(...answer.skipped);
    }
    toast(summary(action, done, skipped), done.length ? 'info' : 'error', skipped.length ? 10000 : 5000);
  } catch (e) {
    toast(`${action}: ${e.message}${done.length ? ` (after ${DONE[action].toLowerCase()} ${runs(done.length)})` : ''}`, 'error', 10000);
  }
  if (action === 'delete' && done.length) {
    const gone = new Set(done);
    setState({ sel: readState().sel.filter((id) => !gone.has(id)) });
  }
}

// `matching`: how many runs match the filters, shown when more could be selected than are.
export function render(selected, matching) {
  $('bulk-bar').hidden = selected === 0;
  $('bulk-count').textContent = `${runs(selected)} selected`;
  const more = $('select-matching');
  more.hidden = matching <= selected;
  more.textContent = `Select all ${runs(matching)} matching the filters`;
}

// then(): the table's next step after an action (reload its page).
export function init(filterParams, then) {
  $('select-matching').addEventListener('click', () => selectMatching(filterParams())
    .catch((e) => toast(`Could not select: ${e.message}`, 'error')));
  $('bulk-bar').addEventListener('click', async (e) => {
    const button = e.target.closest('button[data-bulk]');
    if (!button) return;
    const buttons = [...$('bulk-bar').querySelectorAll('button[data-bulk]')];
    buttons.forEach((b) => { b.disabled = true; });
    await perform(button.dataset.bulk);
    buttons.forEach((b) => { b.disabled = false; });
    then();
  });
}
