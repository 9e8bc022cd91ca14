// The Channels page's access sections: tokens (create, revoke), OAuth grants (revoke) and the OAuth host map.
// Each returns its nodes and a render(rows) the page calls on every refresh; `changed` asks for one.
import { api, clientLabel, confirmButton, csrf, failed, h, stamp, status, statusRegion } from '../lib.js';

export function tokensSection(changed) {
  const tokenBody = h('tbody');
  const note = statusRegion();
  const once = h('div', { id: 'token-once' });
  const channelInput = h('input', {
    id: 'token-channel',
    type: 'text',
    name: 'channel',
    required: true,
    maxlength: 64,
    pattern: '[a-z0-9][a-z0-9._\\-]{0,63}',
    autocomplete: 'off',
    placeholder: 'e.g. telegram',
  });
  const labelInput = h('input', {
    id: 'token-label',
    type: 'text',
    name: 'label',
    maxlength: 100,
    autocomplete: 'off',
  });
  const adminInput = h('input', { id: 'token-admin', type: 'checkbox', name: 'admin' });
  const createForm = h(
    'form',
    { class: 'row card', id: 'token-form' },
    h('input', { type: 'hidden', name: '_csrf', value: csrf }),
    h('div', {}, h('label', { for: 'token-channel' }, 'Channel'), channelInput),
    h('div', {}, h('label', { for: 'token-label' }, 'Label (optional)'), labelInput),
    h(
      'div',
      {},
      h('label', { class: 'check', for: 'token-admin' }, adminInput, 'Admin (restock, set stock, console)'),
    ),
    h('div', {}, h('button', { type: 'submit' }, 'Create token')),
  );
  createForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const issued = await api('tokens', {
        method: 'POST',
        body: {
          channel: channelInput.value.trim(),
          admin: adminInput.checked,
          label: labelInput.value || undefined,
        },
      });
      const copy = h('button', { type: 'button', class: 'quiet' }, 'Copy');
      copy.addEventListener('click', () =>
        navigator.clipboard?.writeText(issued.token).then(() => {
          copy.textContent = 'Copied';
        }),
      );
      once.replaceChildren(
        h(
          'div',
          { class: 'token-once', role: 'alert' },
          h(
            'strong',
            {},
            `New ${issued.record.admin ? 'admin' : 'customer'} token for channel "${issued.record.channel}" (${issued.record.id}). Copy it now: it is shown only once, only its hash is stored.`,
          ),
          h('code', { id: 'new-token' }, issued.token),
          copy,
        ),
      );
      channelInput.value = '';
      labelInput.value = '';
      adminInput.checked = false;
      status(note, '', '');
      changed();
    } catch (error) {
      failed(note, error);
    }
  });

  async function revoke(token, button) {
    button.disabled = true;
    try {
      await api(`tokens/${encodeURIComponent(token.id)}/revoke`, { method: 'POST', body: {} });
      status(
        note,
        'success',
        `Revoked ${token.id} (${token.channel}): it stops working within a few seconds.`,
      );
      changed();
    } catch (error) {
      failed(note, error);
      button.disabled = false;
    }
  }

  function render(tokens) {
    tokenBody.replaceChildren(
      ...tokens.map((t) => {
        const button = confirmButton(
          'Revoke',
          `Revoke ${t.id} (${t.channel})`,
          'Stop this token working?',
          (yes) => revoke(t, yes),
        );
        return h(
          'tr',
          { 'data-token': t.id },
          h('td', { 'data-label': 'Id' }, h('code', {}, t.id)),
          h('td', { 'data-label': 'Channel' }, t.channel),
          h('td', { 'data-label': 'Kind' }, t.admin ? h('span', { class: 'tag warn' }, 'admin') : 'customer'),
          h('td', { 'data-label': 'Label' }, t.label ?? ''),
          h('td', { 'data-label': 'Created' }, t.created_at.slice(0, 16).replace('T', ' ')),
          h(
            'td',
            { 'data-label': 'Last used' },
            t.last_used_at ? t.last_used_at.slice(0, 16).replace('T', ' ') : 'never',
          ),
          h(
            'td',
            { 'data-label': 'Status' },
            t.revoked_at ? h('span', { class: 'tag bad' }, 'revoked') : button,
          ),
        );
      }),
    );
  }

  return {
    render,
    nodes: [
      h('h2', {}, 'Tokens'),
      h(
        'p',
        { class: 'hint' },
        'A token decides its channel. Customer tokens sell; admin tokens also restock and sign in here.',
      ),
      createForm,
      once,
      note,
      h(
        'table',
        { class: 'stack', id: 'tokens-table' },
        h('caption', { class: 'sr-only' }, 'Tokens'),
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ['Id', 'Channel', 'Kind', 'Label', 'Created', 'Last used', 'Status'].map((c) =>
              h('th', { scope: 'col' }, c),
            ),
          ),
        ),
        tokenBody,
      ),
    ],
  };
}

export function grantsSection(changed) {
  const grantBody = h('tbody');
  const grantsEmpty = h('p', { class: 'hint' });
  const grantNote = statusRegion();

  async function revokeGrant(grant, button) {
    button.disabled = true;
    try {
      await api(`grants/${encodeURIComponent(grant.id)}/revoke`, { method: 'POST', body: {} });
      status(
        grantNote,
        'success',
        `Revoked ${clientLabel(grant.client_name, grant.client_id)} (${grant.id}, ${grant.channel}): its refresh token is refused now, its access token within a few seconds.`,
      );
      changed();
    } catch (error) {
      failed(grantNote, error);
      button.disabled = false;
    }
  }

  function grantRow(g) {
    const client = clientLabel(g.client_name, g.client_id);
    return h(
      'tr',
      { 'data-grant': g.id },
      h(
        'td',
        { 'data-label': 'Client', class: 'wide' },
        h('span', { class: 'client' }, client),
        h(
          'div',
          { class: 'hint' },
          g.client_kind === 'cimd' ? 'metadata document ' : g.client_kind === 'dcr' ? 'registered ' : '',
          h('code', {}, g.client_id),
        ),
        h('div', { class: 'hint' }, h('code', {}, g.id)),
      ),
      h('td', { 'data-label': 'Signed in via' }, g.redirect_host),
      h('td', { 'data-label': 'Channel' }, g.channel),
      h(
        'td',
        { 'data-label': 'Scopes' },
        g.scope.split(' ').map((sc) => h('span', { class: `tag ${sc === 'stock:admin' ? 'warn' : ''}` }, sc)),
      ),
      h('td', { 'data-label': 'Created' }, stamp(g.created_at)),
      h('td', { 'data-label': 'Last used' }, stamp(g.last_used_at)),
      h(
        'td',
        { 'data-label': 'Expires' },
        g.revoked_at ? '—' : g.expires_at ? stamp(g.expires_at) : 'expired',
      ),
      h(
        'td',
        { 'data-label': 'Status' },
        g.revoked_at
          ? [h('span', { class: 'tag bad' }, 'revoked'), h('div', { class: 'hint' }, g.revoke_reason ?? '')]
          : confirmButton(
              'Revoke',
              `Revoke grant ${g.id} (${client}, ${g.channel})`,
              'Sign this client out?',
              (yes) => revokeGrant(g, yes),
            ),
      ),
    );
  }

  function render(grants) {
    grantBody.replaceChildren(...grants.map(grantRow));
    grantsEmpty.textContent =
      grants.length === 0
        ? 'No OAuth grants yet: nobody has signed in from ChatGPT, Claude or another OAuth client.'
        : '';
  }

  return {
    render,
    nodes: [
      h('h2', {}, 'OAuth grants'),
      h(
        'p',
        { class: 'hint' },
        'One per sign-in from ChatGPT, Claude or another OAuth client: each is the holder of its own carts. Revoking one refuses its refresh token at once and its access token within a few seconds; the client must sign in again.',
      ),
      grantNote,
      grantsEmpty,
      h(
        'table',
        { class: 'stack', id: 'grants-table' },
        h('caption', { class: 'sr-only' }, 'OAuth grants'),
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ['Client', 'Signed in via', 'Channel', 'Scopes', 'Created', 'Last used', 'Expires', 'Status'].map(
              (c) => h('th', { scope: 'col' }, c),
            ),
          ),
        ),
        grantBody,
      ),
    ],
  };
}

export function hostsSection(changed) {
  const hostBody = h('tbody');
  const hostNote = statusRegion();
  const hostInput = h('input', {
    id: 'host-name',
    type: 'text',
    name: 'host',
    required: true,
    maxlength: 253,
    autocomplete: 'off',
    spellcheck: 'false',
    placeholder: 'e.g. chatgpt.com',
  });
  const hostChannelInput = h('input', {
    id: 'host-channel',
    type: 'text',
    name: 'channel',
    maxlength: 64,
    autocomplete: 'off',
    placeholder: 'e.g. chatgpt',
  });
  const hostForm = h(
    'form',
    { class: 'row card', id: 'host-form' },
    h('div', {}, h('label', { for: 'host-name' }, 'Host'), hostInput),
    h('div', {}, h('label', { for: 'host-channel' }, 'Sells as channel'), hostChannelInput),
    h('div', {}, h('button', { type: 'submit', value: 'allow' }, 'Allow host')),
    h(
      'div',
      {},
      h('button', { type: 'submit', value: 'deny', class: 'quiet', formnovalidate: true }, 'Deny host'),
    ),
  );
  hostForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const deny = event.submitter?.value === 'deny';
    try {
      const saved = await api('oauth-hosts', {
        method: 'POST',
        body: { host: hostInput.value, channel: deny ? null : hostChannelInput.value.trim() },
      });
      status(
        hostNote,
        'success',
        saved.channel === null
          ? `Clients returning to ${saved.host} may no longer sign in (existing grants stay until revoked).`
          : `Clients returning to ${saved.host} may sign in as channel "${saved.channel}".`,
      );
      hostInput.value = '';
      hostChannelInput.value = '';
      changed();
    } catch (error) {
      failed(hostNote, error);
    }
  });

  function render(hosts) {
    hostBody.replaceChildren(
      ...hosts.map((m) =>
        h(
          'tr',
          { 'data-host': m.host },
          h('td', { 'data-label': 'Host' }, m.host),
          h(
            'td',
            { 'data-label': 'Channel' },
            m.channel ? m.channel : h('span', { class: 'tag bad' }, 'denied'),
          ),
          h(
            'td',
            { 'data-label': 'Source' },
            m.source === 'preset' ? 'preset' : m.source === 'store' ? 'your rule' : '',
          ),
        ),
      ),
    );
  }

  return {
    render,
    nodes: [
      h('h2', {}, 'OAuth hosts'),
      h(
        'p',
        { class: 'hint' },
        'Which hosts OAuth clients may return to, and the channel their sign-ins sell as. The same map as ',
        h('code', {}, 'stocklock oauth allow HOST --channel NAME'),
        ' and ',
        h('code', {}, 'oauth deny HOST'),
        '. Denying refuses new sign-ins; existing grants stay until revoked.',
      ),
      hostForm,
      hostNote,
      h(
        'table',
        { class: 'stack', id: 'hosts-table' },
        h('caption', { class: 'sr-only' }, 'OAuth hosts'),
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ['Host', 'Channel', 'Source'].map((c) => h('th', { scope: 'col' }, c)),
          ),
        ),
        hostBody,
      ),
    ],
  };
}
