// The Stock page's API: products with their levels, restock (units received) and set (a stock take).
import express from 'express';
import { z } from 'zod';
import { MAX_STOCK } from '../../domain/rules.js';
import { CONSOLE_CHANNEL, invalid, type PageRoutes } from '../context.js';

const STOCK_LIMIT = 500;

const quantity = (min: number) =>
  z
    .number({ error: 'quantity must be a whole number' })
    .int('quantity must be a whole number')
    .min(min, `quantity must be at least ${min}`)
    .max(MAX_STOCK, `quantity must be at most ${MAX_STOCK}`);
const note = z.string().trim().max(500, 'note must be at most 500 characters').optional();
const restockBody = z.strictObject({ quantity: quantity(1), note });
const setStockBody = z.strictObject({ quantity: quantity(0), note });

export const stockRoutes: PageRoutes = (api, { store, queries }) => {
  const json = express.json({ limit: '64kb' });

  api.get('/stock', async (req, res) => {
    const search = typeof req.query.q === 'string' ? req.query.q.slice(0, 100) : '';
    const products = await queries.stock(search, STOCK_LIMIT);
    res.json({ now: await queries.now(), products, limit: STOCK_LIMIT });
  });

  api.post('/stock/:sku/restock', json, async (req, res) => {
    const parsed = restockBody.safeParse(req.body);
    if (!parsed.success) return invalid(res, parsed.error);
    const level = await store.restock(CONSOLE_CHANNEL, {
      sku: String(req.params.sku),
      quantity: parsed.data.quantity,
      note: parsed.data.note || undefined,
    });
    res.json({ level });
  });

  api.post('/stock/:sku/set', json, async (req, res) => {
    const parsed = setStockBody.safeParse(req.body);
    if (!parsed.success) return invalid(res, parsed.error);
    const level = await store.setStock(CONSOLE_CHANNEL, {
      sku: String(req.params.sku),
      quantity: parsed.data.quantity,
      note: parsed.data.note || undefined,
    });
    res.json({ level });
  });
};
