// stocklock console: shows the page the URL's hash names and refreshes it when the server pushes a change.
// Plain browser JavaScript modules, no build step and nothing fetched from elsewhere: the page works offline.
import { api } from './lib.js';
import { auditPage } from './pages/audit.js';
import { channelsPage } from './pages/channels.js';
import { holdsPage } from './pages/holds.js';
import { importPage } from './pages/import.js';
import { ledgerPage } from './pages/ledger.js';
import { ordersPage } from './pages/orders.js';
import { stockPage } from './pages/stock.js';

/**
 * Each page renders itself into <main> and returns its refresh (or null when it shows nothing live); a
 * refresh may carry stop() for the timers it runs. A new page: a module in pages/, and its name here and in
 * the server's page list (src/console/pages.ts).
 */
const pages = {
  stock: stockPage,
  holds: holdsPage,
  orders: ordersPage,
  channels: channelsPage,
  ledger: ledgerPage,
  import: importPage,
  audit: auditPage,
};

const main = document.getElementById('main');
const liveBadge = document.getElementById('live');

let current = { name: '', refresh: null };

function show() {
  const name = Object.hasOwn(pages, location.hash.slice(1)) ? location.hash.slice(1) : 'stock';
  current.refresh?.stop?.();
  for (const link of document.querySelectorAll('nav a')) {
    if (link.dataset.page === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  document.title = `${name[0].toUpperCase()}${name.slice(1)} · stocklock console`;
  current = { name, refresh: pages[name](main) };
  refreshNow();
  main.focus({ preventScroll: true });
}

// One refresh at a time; a change announced during one runs one more after it.
let running = false;
let again = false;
async function refreshNow() {
  if (!current.refresh) return;
  if (running) {
    again = true;
    return;
  }
  running = true;
  try {
    await current.refresh();
  } catch (error) {
    console.error(error);
  } finally {
    running = false;
    if (again) {
      again = false;
      refreshNow();
    }
  }
}

function connect() {
  const events = new EventSource('api/events');
  events.addEventListener('ready', () => {
    liveBadge.textContent = 'live';
    liveBadge.className = 'live on';
    refreshNow();
  });
  events.addEventListener('change', refreshNow);
  events.addEventListener('signed-out', () => location.reload());
  events.onerror = () => {
    liveBadge.textContent = 'reconnecting…';
    liveBadge.className = 'live off';
    // The browser retries a dropped stream by itself, but gives up on a refused one (e.g. signed out):
    // asking the API then either reloads to the sign-in page or finds the server back.
    if (events.readyState === EventSource.CLOSED) {
      setTimeout(() => api('holds').then(connect, connect), 2000);
    }
  };
}

window.addEventListener('hashchange', show);
show();
connect();
