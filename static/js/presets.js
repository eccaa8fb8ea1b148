// "Save as my preset": a run's network, dataset and hyper-parameters stored under a name
// (POST /presets) and listed in the launch view beside the notes' presets, where they are
// renamed (PATCH /presets/{id}) and deleted (DELETE). One dialog asks for the name and the
// description, for saving and for renaming; the server's refusal stays in it.

import { api, ApiError, post, reloadZoo } from './api.js';
import { toast } from './widgets.js';

const $ = (id) => document.getElementById(id);

// Opens the dialog; resolves to the preset the server answered with, or null if cancelled.
function ask({ title, hint, name, description, submitText, request }) {
  const dialog = $('preset-dialog');
  const form = $('preset-form');
  $('preset-dialog-title').textContent = title;
  $('preset-dialog-hint').innerHTML = hint;
  $('preset-name').value = name;
  $('preset-description').value = description;
  $('preset-submit').textContent = submitText;
  $('preset-error').hidden = true;
  return new Promise((resolve) => {
    let answered = null;
    const submit = async (e) => {
      e.preventDefault();
      $('preset-submit').disabled = true;
      try {
        answered = await request($('preset-name').value.trim(), $('preset-description').value.trim());
        dialog.close();
      } catch (err) {
        const items = err instanceof ApiError && err.fieldErrors.length ? err.fieldErrors : [{ msg: err.message }];
        $('preset-error').textContent = items.map(({ field, msg }) => (field ? `${field}: ${msg}` : msg)).join('; ');
        $('preset-error').hidden = false;
      } finally {
        $('preset-submit').disabled = false;
      }
    };
    form.addEventListener('submit', submit);
    $('preset-cancel').onclick = () => dialog.close();
    dialog.addEventListener('close', () => {
      form.removeEventListener('submit', submit);
      resolve(answered);
    }, { once: true });
    dialog.showModal();
    $('preset-name').select();
  });
}

export async function savePreset(run) {
  const preset = await ask({
    title: 'Save as my preset',
    hint: `Run <strong>#${run.id}</strong>'s network, dataset and hyper-parameters, under a name of yours. `
      + 'It is listed in the Launch view beside the notes\' presets.',
    name: '', description: run.name, submitText: 'Save preset',
    request: (name, description) => post('/presets', { name, from_run: run.id, description }),
  });
  if (preset) {
    await reloadZoo();
    toast(`Saved as your preset ${preset.id} (“${preset.name}”): launch it from the Launch view.`);
  }
  return preset;
}

export async function renamePreset(preset) {
  const renamed = await ask({
    title: `Rename ${preset.id}`,
    hint: 'The id stays (runs and links use it); the name and the description change.',
    name: preset.name, description: preset.description || '', submitText: 'Rename',
    request: (name, description) => api(`/presets/${encodeURIComponent(preset.id)}`,
      { method: 'PATCH', body: { name, description } }),
  });
  if (renamed) await reloadZoo();
  return renamed;
}

export async function deletePreset(preset) {
  if (!confirm(`Delete your preset ${preset.id} (“${preset.name}”)? Runs that used it keep their network.`)) return false;
  try {
    await api(`/presets/${encodeURIComponent(preset.id)}`, { method: 'DELETE' });
  } catch (e) {
    toast(`Delete ${preset.id}: ${e.message}`, 'error');
    return false;
  }
  await reloadZoo();
  toast(`Deleted your preset ${preset.id}.`);
  return true;
}
