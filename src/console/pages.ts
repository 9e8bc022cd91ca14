// The console's two HTML documents: the sign-in form (works without JavaScript) and the shell the script fills.

const escapes: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => escapes[c] ?? c);
}

function head(title: string, extra = ''): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light">
<title>${escapeHtml(title)}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="assets/console.css">
<link rel="stylesheet" href="assets/console-phone.css">
${extra}</head>`;
}

export function signInPage(csrf: string, problem?: string): string {
  return `${head('Sign in · stocklock console')}
<body class="sign-in">
<main id="main">
  <h1>stocklock console</h1>
  <p>Sign in with an <strong>admin</strong> token. Make one with
  <code>npx stocklock token create --channel ops --admin</code>.</p>
  ${problem ? `<p class="problem" role="alert" id="sign-in-problem">${escapeHtml(problem)}</p>` : ''}
  <form method="post" action="sign-in" class="card">
    <input type="hidden" name="_csrf" value="${escapeHtml(csrf)}">
    <label for="token">Admin token</label>
    <input id="token" name="token" type="password" autocomplete="current-password" spellcheck="false"
      required maxlength="200"${problem ? ' aria-describedby="sign-in-problem" aria-invalid="true"' : ''} autofocus>
    <button type="submit">Sign in</button>
  </form>
</main>
</body>
</html>`;
}

export const CONSOLE_PAGES = ['stock', 'holds', 'orders', 'channels', 'ledger', 'import', 'audit'] as const;

export function shellPage(csrf: string, channel: string): string {
  const nav = CONSOLE_PAGES.map(
    (page) => `<a href="#${page}" data-page="${page}">${page[0]?.toUpperCase()}${page.slice(1)}</a>`,
  ).join('');
  return `${head(
    'stocklock console',
    `<meta name="csrf-token" content="${escapeHtml(csrf)}">\n<script type="module" src="assets/console.js"></script>\n`,
  )}
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
  <span class="brand">stocklock</span>
  <nav aria-label="Console pages">${nav}</nav>
  <span class="who">signed in on <strong>${escapeHtml(channel)}</strong></span>
  <span id="live" class="live" role="status" aria-live="polite">connecting…</span>
  <form method="post" action="sign-out" class="sign-out">
    <input type="hidden" name="_csrf" value="${escapeHtml(csrf)}">
    <button type="submit" class="quiet">Sign out</button>
  </form>
</header>
<main id="main" tabindex="-1" aria-live="off"><noscript>The console needs JavaScript; the command line does everything it does.</noscript></main>
</body>
</html>`;
}
