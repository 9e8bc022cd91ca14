// The Holds page's API: open carts with their holders and lines, and releasing one as its own owner.
import express from 'express';
import { ErrorCode } from '../../domain/errors.js';
import { apiError, type PageRoutes } from '../context.js';

const HOLDS_LIMIT = 200;

export const holdsRoutes: PageRoutes = (api, { store, queries, logger }) => {
  const json = express.json({ limit: '64kb' });

  api.get('/holds', async (_req, res) => {
    res.json({ now: await queries.now(), carts: await queries.holds(HOLDS_LIMIT), limit: HOLDS_LIMIT });
  });

  api.post('/holds/:cartId/release', json, async (req, res) => {
    const cartId = String(req.params.cartId);
    const owner = await queries.cartOwner(cartId);
    if (owner === undefined) {
      apiError(res, 404, ErrorCode.CART_NOT_FOUND, `No cart has id "${cartId}".`, { cart_id: cartId });
      return;
    }
    // Released as its own channel and holder: the store's rules for the cart's owner apply unchanged.
    const result = await store.releaseCart(owner, { cartId });
    logger.info(
      { cart: cartId, channel: owner.channel, released: result.released },
      'console released a cart',
    );
    res.json(result);
  });
};
