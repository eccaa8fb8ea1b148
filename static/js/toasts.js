// Short messages at the bottom left of the window: at most two at once (an older one gives way),
// a repeat of the one shown counts up instead of stacking, so they never pile over the table's
// times and action buttons.

const MAX_SHOWN = 2;

export function toast(message, kind = 'info', ms = kind === 'error' ? 8000 : 4000) {
  const box = document.getElementById('toasts');
  const same = [...box.children].find((el) => el.dataset.message === message && el.dataset.kind === kind);
  const el = same || document.createElement('div');
  if (same) {
    const count = Number(same.dataset.count) + 1;
    same.dataset.count = count;
    same.querySelector('.toast-count').textContent = `×${count}`;
    clearTimeout(Number(same.dataset.timer));
  } else {
    el.className = `toast toast-${kind}`;
    el.setAttribute('role', kind === 'error' ? 'alert' : 'status');
    Object.assign(el.dataset, { message, kind, count: 1 });
    el.innerHTML = '<span class="toast-text"></span> <span class="toast-count"></span>';
    el.querySelector('.toast-text').textContent = message;
    el.addEventListener('click', () => el.remove());
    box.append(el);
    while (box.children.length > MAX_SHOWN) box.firstElementChild.remove();
  }
  el.dataset.timer = setTimeout(() => el.remove(), ms);
}
