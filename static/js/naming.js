// Names for the runs and groups of one comparison, by what tells each apart within it:
// "#14 · seed 2 · batch 64" rather than six times "#14 mnist-2fc-relu-55k". The name (or the
// preset) when those differ; then, among the items of the same preset, the settings that differ.
//
//   labels(items)   items: [{id?, name, model, dataset, config, changes, seeds?}] (runs have an
//                   id, groups not); returns a label per item, in order.

import { value } from './format.js';

const SHORT = { batch_size: 'batch', weight_decay: 'weight decay', train_subset: 'train on', test_subset: 'test on',
  augment_from_epoch: 'augment from epoch', total_iters: 'total iters', grad_clip: 'clip' };
const NOT_SETTINGS = new Set(['name', 'model', 'dataset', 'layers']);
const MAX_PARTS = 3;

const differs = (items, get) => new Set(items.map((i) => JSON.stringify(get(i) ?? null))).size > 1;

// Changes from the preset that are layer changes ("bn1d 60 after layer 1"), not "lr 0.001".
function layerChanges(item) {
  const keys = Object.keys(item.config || {});
  return (item.changes || []).filter((c) => !keys.some((k) => c.startsWith(`${k} `)));
}

function parts(item, peers) {
  const out = [];
  if (peers.length > 1) {
    if (differs(peers, (p) => p.config?.layers)) out.push(layerChanges(item).join(', ') || 'preset layers');
    const keys = [...new Set(peers.flatMap((p) => Object.keys(p.config || {})))].filter((k) => !NOT_SETTINGS.has(k));
    for (const key of keys.sort((a, b) => (a === 'seed' ? -1 : b === 'seed' ? 1 : a.localeCompare(b)))) {
      const v = item.config?.[key];
      if (v !== undefined && differs(peers, (p) => p.config?.[key])) out.push(`${SHORT[key] || key} ${value(v)}`);
    }
  }
  return out.length > MAX_PARTS ? [...out.slice(0, MAX_PARTS), `+${out.length - MAX_PARTS} more`] : out;
}

export function labels(items) {
  const namesDiffer = differs(items, (i) => i.name);
  const presetsDiffer = differs(items, (i) => `${i.model} ${i.dataset}`);
  return items.map((item) => {
    const peers = items.filter((p) => p.model === item.model && p.dataset === item.dataset);
    const words = parts(item, peers);
    const head = item.id !== undefined ? [`#${item.id}`] : [];
    if (namesDiffer || !words.length) head.push(item.name);
    else if (presetsDiffer) head.push(item.model);
    if (item.id === undefined) words.push(`${item.seeds.length} seed${item.seeds.length === 1 ? '' : 's'}`);
    return [head.join(' '), ...words].filter(Boolean).join(' · ');
  });
}
