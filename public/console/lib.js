// The console's shared browser code: building elements, calling the JSON API, formatting, status messages.
// Plain browser JavaScript, no build step and nothing fetched from elsewhere: the page works offline.

export const csrf = document.querySelector('meta[name="csrf-token"]').content;
export const KINDS = ['import', 'restock', 'adjust', 'reserve', 'release', 'expire', 'sale'];
export const DAY_MS = 86_400_000;

/** Builds an element; text is always set as text, never parsed as HTML. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'text') el.textContent = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const SVG = 'http://www.w3.org/2000/svg';
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  for (const child of children)
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return el;
}

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message ?? `Request failed (${status})`);
    this.status = status;
    this.code = body?.error?.code;
    this.problems = body?.error?.problems ?? [];
  }
}

export async function api(path, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET') headers['X-CSRF-Token'] = csrf;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(`api/${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
  });
  const data = await res.json().catch(() => ({}));
  if (res.status === 401) {
    location.reload();
    throw new ApiError(res.status, data);
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

export function money(minor, currency) {
  const digits = new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions()
    .maximumFractionDigits;
  return `${(minor / 10 ** digits).toFixed(digits)} ${currency}`;
}

export function moneyList(byCurrency) {
  const entries = Object.entries(byCurrency);
  return entries.length === 0 ? '—' : entries.map(([c, v]) => money(v, c)).join(' + ');
}

export function when(ms) {
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 19);
}

export function status(el, kind, message, problems = []) {
  el.className = `status ${kind}`;
  el.replaceChildren(
    message,
    problems.length
      ? h(
          'ul',
          { class: 'problems' },
          problems.map((p) => h('li', {}, p)),
        )
      : '',
  );
}

export function statusRegion() {
  return h('div', { class: 'status', role: 'status', 'aria-live': 'polite' });
}

/** Shows an action's refusal next to the form, as the server phrased it. */
export function failed(el, error) {
  status(
    el,
    'problem',
    error instanceof ApiError ? `${error.code ?? 'ERROR'}: ${error.message}` : String(error),
    error.problems,
  );
}

/**
 * A revoke button with a confirm step: the first press asks, the second acts, "Keep" backs out.
 * Focus moves to the question so a keyboard user hears it and can answer.
 */
export function confirmButton(label, ariaLabel, question, act) {
  const cell = h('span', { class: 'confirm' });
  const ask = h('button', { type: 'button', class: 'danger', 'aria-label': ariaLabel }, label);
  const show = () => cell.replaceChildren(ask);
  ask.addEventListener('click', () => {
    const yes = h(
      'button',
      { type: 'button', class: 'danger', 'aria-label': `Confirm: ${ariaLabel}` },
      `${label} now`,
    );
    const no = h('button', { type: 'button', class: 'quiet' }, 'Keep');
    yes.addEventListener('click', () => act(yes));
    no.addEventListener('click', () => {
      show();
      ask.focus();
    });
    cell.replaceChildren(h('span', { class: 'hint' }, question), ' ', yes, ' ', no);
    yes.focus();
  });
  show();
  return cell;
}

/** A client as the merchant knows it: its own name, else its id (a CIMD URL or a registered cli_ id). */
export function clientLabel(name, clientId) {
  return name ?? clientId ?? 'unknown client';
}

export function stamp(ms) {
  return ms === null || ms === undefined ? 'never' : when(ms).slice(0, 16);
}
