// The dialog that edits a run's labels: its name, notes and tags (PATCH /runs/{id}, through the
// store). The server checks them; its message is shown in the dialog, which stays open.

import * as store from './store.js';
import { toast } from './widgets.js';

const $ = (id) => document.getElementById(id);
let editing = null;

// Tags as typed: separated by spaces or commas.
export const parseTags = (text) => [...new Set(text.split(/[\s,]+/).filter(Boolean))];

export function open(id) {
  const run = store.get(id);
  if (!run) return;
  editing = run;
  $('edit-title').textContent = `Run #${run.id}`;
  $('edit-name').value = run.name;
  $('edit-tags').value = (run.tags || []).join(' ');
  $('edit-notes').value = run.notes || '';
  $('edit-error').hidden = true;
  $('edit-dialog').showModal();
  $('edit-name').focus();
}

async function save(e) {
  e.preventDefault();
  const typed = { name: $('edit-name').value, notes: $('edit-notes').value, tags: parseTags($('edit-tags').value) };
  const changed = Object.fromEntries(Object.entries(typed)
    .filter(([key, v]) => JSON.stringify(v) !== JSON.stringify(editing[key] ?? (key === 'tags' ? [] : ''))));
  $('edit-save').disabled = true;
  try {
    if (Object.keys(changed).length) {
      await store.edit(editing.id, changed);
      toast(`Saved #${editing.id}: ${Object.keys(changed).join(', ')}.`);
    }
    $('edit-dialog').close();
  } catch (err) {
    $('edit-error').textContent = err.message;
    $('edit-error').hidden = false;
  } finally {
    $('edit-save').disabled = false;
  }
}

export function init() {
  $('edit-form').addEventListener('submit', save);
  $('edit-cancel').addEventListener('click', () => $('edit-dialog').close());
}
