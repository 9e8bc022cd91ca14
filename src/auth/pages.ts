// The pages a person sees while signing in: consent, the unmapped-host page and errors; plain HTML, no JavaScript.

const escapes: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};
export const html = (text: string) => text.replace(/[&<>"']/g, (c) => escapes[c] as string);

const STYLE = `
  body { font: 16px/1.5 system-ui, sans-serif; background: #f4f4f5; color: #18181b; margin: 0; }
  main { max-width: 34rem; margin: 3rem auto; background: #fff; border-radius: 12px; padding: 2rem;
         box-shadow: 0 1px 3px rgba(0,0,0,.12); }
  h1 { font-size: 1.35rem; margin: 0 0 1rem; }
  dl { display: grid; grid-template-columns: max-content 1fr; gap: .35rem 1rem; margin: 1rem 0 1.5rem; }
  dt { color: #52525b; } dd { margin: 0; font-weight: 600; overflow-wrap: anywhere; }
  ul { padding-left: 1.2rem; } code { background: #f4f4f5; padding: .1rem .3rem; border-radius: 4px; }
  .actions { display: flex; gap: .75rem; margin-top: 1.25rem; }
  button { font: inherit; padding: .6rem 1.2rem; border-radius: 8px; border: 1px solid #d4d4d8; background: #fff; cursor: pointer; }
  button.primary { background: #18181b; color: #fff; border-color: #18181b; }
  fieldset { border: 1px solid #e4e4e7; border-radius: 8px; margin-top: 1.5rem; padding: 1rem; }
  input[type=password] { font: inherit; width: 100%; box-sizing: border-box; padding: .5rem; margin: .5rem 0; }
  .error { color: #b91c1c; font-weight: 600; } .muted { color: #52525b; font-size: .9rem; }`;

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin"><title>${html(title)}</title><style>${STYLE}</style></head>
<body><main>${body}</main></body></html>`;
}

export interface ConsentView {
  clientName: string;
  clientId: string;
  /** How the client registered: a metadata document (verified URL) or dynamic registration (self-declared). */
  registration: 'cimd' | 'dcr';
  /** The origin the browser returns to, shown whole: a look-alike scheme or port must not hide. */
  returnOrigin: string;
  channel: string;
  adminRequested: boolean;
  /** The authorization request, echoed back in hidden fields (none of it secret). */
  fields: Record<string, string>;
  csrf: string;
  error?: string;
}

const SHOP_ABILITIES = [
  'search products and check stock',
  'put items in a cart, which holds them for a while',
  'check out the cart, and release it',
];
const ADMIN_ABILITIES = ['restock, set stock levels and edit products'];

function hiddenFields(view: ConsentView): string {
  const fields: [string, string][] = [...Object.entries(view.fields), ['csrf_token', view.csrf]];
  return fields
    .map(([name, value]) => `<input type="hidden" name="${html(name)}" value="${html(value)}">`)
    .join('\n');
}

export function consentPage(view: ConsentView): string {
  const identity =
    view.registration === 'cimd'
      ? `<p class="muted">Identified by its published metadata at <code>${html(view.clientId)}</code>.</p>`
      : '<p class="muted">The app named itself when it registered; check the address it returns to.</p>';
  const admin = view.adminRequested
    ? `<form method="post" action="/authorize">
${hiddenFields(view)}
<fieldset><legend>Merchant: also allow stock administration</legend>
<p>The app also asks to ${ADMIN_ABILITIES.map(html).join(', ')}. Only the shop's merchant can allow that, with an admin token
(<code>stocklock token create --channel NAME --admin</code>).</p>
<label for="admin_token">Admin token</label>
<input type="password" id="admin_token" name="admin_token" autocomplete="off" required>
<div class="actions"><button type="submit" name="decision" value="allow_admin">Sign in and allow administration</button></div>
</fieldset></form>`
    : '';
  return page(
    `Allow ${view.clientName} to shop?`,
    `<h1>Allow <strong>${html(view.clientName)}</strong> to shop here?</h1>
${identity}
${view.error ? `<p class="error" role="alert">${html(view.error)}</p>` : ''}
<dl>
<dt>App</dt><dd>${html(view.clientName)}</dd>
<dt>Returns to</dt><dd>${html(view.returnOrigin)}</dd>
<dt>Sells as channel</dt><dd>${html(view.channel)}</dd>
</dl>
<p>It will be able to:</p>
<ul>${SHOP_ABILITIES.map((a) => `<li>${html(a)}</li>`).join('')}</ul>
<form method="post" action="/authorize">
${hiddenFields(view)}
<div class="actions">
<button type="submit" class="primary" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button>
</div>
</form>
${admin}`,
  );
}

export function unmappedHostPage(host: string, denied: boolean, clientName: string): string {
  const command = `stocklock oauth allow ${host} --channel NAME`;
  return page(
    'This app may not sign in here yet',
    `<h1>${html(clientName)} may not sign in to this shop yet</h1>
<p>It would return to <strong>${html(host)}</strong>, which ${
      denied ? 'the merchant has denied' : 'is not one of the hosts this shop allows'
    }.</p>
<p>If you run this shop and want to allow it, choose the sales channel it should sell as and run:</p>
<p><code>${html(command)}</code></p>
<p class="muted">Then start the connection again from the app.</p>`,
  );
}

export function errorPage(title: string, message: string): string {
  return page(title, `<h1>${html(title)}</h1><p>${html(message)}</p>`);
}
