// "Edit & launch": the launch form filled with a run's whole configuration and network, the
// new run recorded as derived from it (#view=launch&from=ID). Every view that shows a run links
// to it with forkLink(run); "Retry with changes" on a failed run.

import { esc } from './format.js';

export const forkHref = (id) => `#view=launch&from=${id}`;

// compact: a short label where room is scarce (the runs table's row actions), the full one in its title.
export function forkLink(run, { small = true, compact = false } = {}) {
  const label = run.status === 'failed' ? 'Retry with changes' : 'Edit & launch';
  const title = `${label}: #${run.id}'s configuration and network in the launch form`;
  return `<a class="btn${small ? ' btn-small' : ''} fork-link" href="${forkHref(run.id)}" data-go-view="launch"`
    + ` data-go-from="${run.id}" data-testid="fork-${run.id}" title="${esc(title)}" aria-label="${esc(title)}">`
    + `${compact ? (run.status === 'failed' ? 'Fix…' : 'Edit…') : label}</a>`;
}
