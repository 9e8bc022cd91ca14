// The Audit page's API: every invariant checked, read-only.
import express from 'express';
import type { PageRoutes } from '../context.js';

export const auditRoutes: PageRoutes = (api, { store }) => {
  api.post('/audit', express.json({ limit: '64kb' }), async (_req, res) => {
    res.json(await store.audit());
  });
};
