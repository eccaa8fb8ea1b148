// "Edit & launch": the launch form filled with a run's whole configuration and network, the
// new run recorded as derived from it (#view=launch&from=ID). Every view that shows a run links
// to it with forkLink(run); "Retry with changes" on a failed run.

import { esc } from './format.js';

export const forkHref = (id) => `#view=launch&from=${id}`;

export function forkLink(run, { small = true } = {}) {
  const label = run.status === 'failed' ? 'Retry with changes' : 'Edit & launch';
  return `<a class="btn${small ? ' btn-small' : ''} fork-link" href="${forkHref(run.id)}" data-go-view="launch"`
    + ` data-go-from="${run.id}" data-testid="fork-${run.id}" title="${esc(`${label}: #${run.id}'s configuration and network in the launch form`)}">${label}</a>`;
}
