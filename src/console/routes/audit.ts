// The Audit page's API: every invariant checked, read-only, off the store's hot path (ConsoleQueries.audit).
import express from 'express';
import type { PageRoutes } from '../context.js';

export const auditRoutes: PageRoutes = (api, { queries }) => {
  api.post('/audit', express.json({ limit: '64kb' }), async (_req, res) => {
    res.json(await queries.audit());
  });
};
