// The Channels page's API: activity per channel, tokens, OAuth grants and the OAuth host map.
import express from 'express';
import { z } from 'zod';
import { allowHost, denyHost, isGrantId } from '../../auth/admin.js';
import { effectiveHosts, normalizeHost } from '../../auth/hosts.js';
import { assertChannel, CHANNEL_PATTERN } from '../../config.js';
import { ErrorCode } from '../../domain/errors.js';
import { apiError, invalid, type PageRoutes } from '../context.js';

const ACTIVITY_DAYS = 7;
const GRANT_REVOKE_REASON = 'revoked in the console';

const tokenBody = z.strictObject({
  channel: z
    .string()
    .regex(CHANNEL_PATTERN, 'channel must be 1-64 of a-z 0-9 . _ - starting with a letter or digit'),
  admin: z.boolean().default(false),
  label: z.string().trim().max(100, 'label must be at most 100 characters').optional(),
});
/** channel null denies the host, as `oauth deny` does. */
const hostBody = z.strictObject({
  host: z.string().trim().min(1, 'host is required').max(253, 'host must be at most 253 characters'),
  channel: z.string().trim().nullable(),
});

export const channelsRoutes: PageRoutes = (api, ctx) => {
  const { store, queries, logger, clock } = ctx;
  const json = express.json({ limit: '64kb' });

  api.get('/channels', async (_req, res) => {
    const [activity, tokens, grants, rules, checkout] = await Promise.all([
      queries.channelActivity(ACTIVITY_DAYS),
      store.listTokens(),
      queries.grants(),
      store.oauth.hostRules(),
      store.channelSettings(),
    ]);
    res.json({
      now: await queries.now(),
      ...activity,
      checkout,
      tokens,
      grants,
      hosts: effectiveHosts(rules),
    });
  });

  api.post('/grants/:id/revoke', json, async (req, res) => {
    const id = String(req.params.id);
    // The store drops the grant's access and refresh tokens with it: the client is refused from now on.
    const revoked = isGrantId(id) && (await store.oauth.revokeGrant(id, clock.now(), GRANT_REVOKE_REASON));
    if (!revoked) {
      apiError(res, 404, 'GRANT_NOT_FOUND', `No live OAuth grant has id "${id}".`, { id });
      return;
    }
    logger.info({ grantId: id }, 'console revoked an OAuth grant');
    res.json({ revoked: id });
  });

  // The host map is edited by the same functions as `stocklock oauth allow` and `oauth deny`.
  api.post('/oauth-hosts', json, async (req, res) => {
    const parsed = hostBody.safeParse(req.body);
    if (!parsed.success) return invalid(res, parsed.error);
    const { host, channel } = parsed.data;
    try {
      // The checks allowHost/denyHost and the CLI apply, made first so a refusal changes nothing.
      normalizeHost(host);
      if (channel !== null) assertChannel(channel);
    } catch (error) {
      apiError(res, 400, ErrorCode.INVALID_INPUT, (error as Error).message);
      return;
    }
    const now = clock.now();
    const saved =
      channel === null
        ? await denyHost(store.oauth, host, now)
        : await allowHost(store.oauth, host, channel, now);
    logger.info(
      { host: saved, channel },
      channel === null ? 'console denied an OAuth host' : 'console allowed an OAuth host',
    );
    res.json({ host: saved, channel });
  });

  api.post('/tokens', json, async (req, res) => {
    const parsed = tokenBody.safeParse(req.body);
    if (!parsed.success) return invalid(res, parsed.error);
    const { channel, admin, label } = parsed.data;
    const issued = await store.createToken(channel, admin, label || undefined);
    logger.info({ tokenId: issued.record.id, channel, admin }, 'console created a token');
    // The secret leaves the server this once; the store keeps only its hash.
    res.status(201).json(issued);
  });

  api.post('/tokens/:id/revoke', json, async (req, res) => {
    const id = String(req.params.id);
    const revoked = await store.revokeToken(id);
    if (!revoked) {
      apiError(res, 404, 'TOKEN_NOT_FOUND', `No live token has id "${id}".`, { id });
      return;
    }
    ctx.forgetLiveTokens();
    await ctx.sessions.deleteByToken(id);
    ctx.feed.sweep();
    logger.info({ tokenId: id }, 'console revoked a token');
    res.json({ revoked: id });
  });
};
