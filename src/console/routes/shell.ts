// The console's documents: its static assets, and the page itself (the shell when signed in, else the sign-in form).
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Router } from 'express';
import type { SessionGate } from '../middleware.js';
import { shellPage } from '../pages.js';

const ASSETS = fileURLToPath(new URL('../../../public/console/', import.meta.url));
/** The browser's files: the stylesheet, the entry script, its shared module and one module per page. */
const ASSET_PATH = /^(?:pages\/)?[a-z][a-z0-9-]*\.(js|css)$/;
const ASSET_TYPES: Record<string, string> = {
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
};

export function shellRoutes(router: Router, gate: SessionGate): void {
  router.get('/assets/*path', (req, res) => {
    const name = ([] as string[]).concat(req.params.path ?? []).join('/');
    const kind = ASSET_PATH.exec(name)?.[1];
    const path = `${ASSETS}${name}`;
    if (!kind || !existsSync(path)) {
      res.status(404).type('text').send('Not found');
      return;
    }
    res.set({ 'Content-Type': ASSET_TYPES[kind], 'Cache-Control': 'no-cache' }).send(readFileSync(path));
  });

  router.get('/', async (req, res) => {
    // Relative links (assets/, api/) resolve under /console/ wherever a proxy mounts it.
    if (!req.originalUrl.split('?')[0]?.endsWith('/')) {
      res.redirect(303, `${req.baseUrl}/`);
      return;
    }
    res.set('Cache-Control', 'no-store');
    const found = await gate.current(req);
    if (!found) {
      gate.sendSignIn(res, 200);
      return;
    }
    res.type('html').send(shellPage(found.session.csrf, found.session.channel));
  });
}
