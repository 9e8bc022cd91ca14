// The OAuth store on SQLite and PostgreSQL: one contract, plus racing rotations of one refresh token across connections.

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { hashSecret, newSecret } from '../../src/auth/secrets.js';
import type { NewGrant, OAuthStore, TokenPair } from '../../src/storage/oauth.js';
import { openPostgresStore } from '../../src/storage/postgres/store.js';
import { Database } from '../../src/storage/sqlite/driver.js';
import { openSqliteStore } from '../../src/storage/sqlite/store.js';
import type { InventoryStore } from '../../src/storage/store.js';
import { storeOptions } from '../helpers/http.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePostgres } from '../helpers/requirements.js';
import { tempDir } from '../helpers/temp.js';

const NOW = 1_800_000_000_000;

function pair(now = NOW): TokenPair & { access: string; refresh: string } {
  const access = newSecret('sla_');
  const refresh = newSecret('slr_');
  return {
    access,
    refresh,
    access_hash: hashSecret(access),
    access_expires_at: now + 3_600_000,
    refresh_hash: hashSecret(refresh),
    refresh_expires_at: now + 86_400_000,
  };
}

async function codeAndGrant(oauth: OAuthStore, id: string): Promise<{ codeHash: string; grant: NewGrant }> {
  const codeHash = hashSecret(newSecret('slc_'));
  await oauth.saveCode({
    code_hash: codeHash,
    client_id: 'cli_a',
    redirect_uri: 'https://claude.ai/api/mcp/auth_callback',
    code_challenge: 'x'.repeat(43),
    scope: 'stock:shop',
    resource: 'http://127.0.0.1:1/mcp',
    channel: 'claude',
    created_at: NOW,
    expires_at: NOW + 300_000,
    used_at: null,
    grant_id: null,
  });
  return {
    codeHash,
    grant: {
      id,
      client_id: 'cli_a',
      channel: 'claude',
      scope: 'stock:shop',
      resource: 'http://127.0.0.1:1/mcp',
      redirect_host: 'claude.ai',
    },
  };
}

/** `open` gives two stores on one database: two connections, or two pools, racing for real. */
function describeOAuthStore(
  name: string,
  open: () => Promise<[InventoryStore, InventoryStore]>,
  countTokens: () => Promise<number>,
) {
  describe(`OAuth store on ${name}`, () => {
    const stores: InventoryStore[] = [];
    afterEach(async () => {
      await Promise.all(stores.splice(0).map((s) => s.close()));
    });
    const both = async () => {
      const opened = await open();
      stores.push(...opened);
      return opened;
    };

    it('redeems a code once; a second redemption revokes the grant it made', async () => {
      const [store] = await both();
      const oauth = (store as InventoryStore).oauth;
      await oauth.saveClient({
        client_id: 'cli_a',
        kind: 'dcr',
        metadata: JSON.stringify({ client_name: 'Claude', redirect_uris: [] }),
        secret_hash: null,
        created_at: NOW,
        fetched_at: NOW,
      });
      const { codeHash, grant } = await codeAndGrant(oauth, 'grt_one');
      const tokens = pair();
      expect(await oauth.redeemCode(codeHash, NOW, grant, tokens)).toBe('issued');
      expect(await oauth.verifyAccess(tokens.access_hash, NOW + 1)).toMatchObject({
        id: 'grt_one',
        channel: 'claude',
        client_name: 'Claude',
      });
      expect(await oauth.verifyAccess(tokens.access_hash, NOW + 3_600_000)).toBeUndefined();
      expect(await oauth.redeemCode(codeHash, NOW + 2, { ...grant, id: 'grt_two' }, pair())).toBe('reused');
      expect(await oauth.verifyAccess(tokens.access_hash, NOW + 3)).toBeUndefined();
      const grants = await oauth.listGrants();
      expect(grants.map((g) => [g.id, g.revoke_reason])).toEqual([['grt_one', 'authorization code reused']]);
    });

    it('rotates a refresh token once when two connections race to use it, and revokes the grant', async () => {
      const [first, second] = await both();
      const { codeHash, grant } = await codeAndGrant(first.oauth, 'grt_race');
      const tokens = pair();
      await first.oauth.redeemCode(codeHash, NOW, grant, tokens);
      const outcomes = await Promise.all([
        first.oauth.rotateRefresh(tokens.refresh_hash, NOW + 10, pair()),
        second.oauth.rotateRefresh(tokens.refresh_hash, NOW + 10, pair()),
      ]);
      expect(outcomes.sort()).toEqual(['issued', 'reused']);
      // The loser is a replay: the grant is revoked, and every token of it with it.
      const [after] = await second.oauth.listGrants();
      expect(after?.revoked_at).toBe(NOW + 10);
      expect(await first.oauth.verifyAccess(tokens.access_hash, NOW + 11)).toBeUndefined();
    });

    it('drops the expired tokens of a grant as it issues new ones, keeping live refresh tokens for reuse detection', async () => {
      const [store] = await both();
      const { codeHash, grant } = await codeAndGrant(store.oauth, 'grt_prune');
      const first = pair();
      await store.oauth.redeemCode(codeHash, NOW, grant, first);
      // Two hours on: the first access token has expired, its refresh token (a day) has not.
      const later = NOW + 7_200_000;
      expect(await store.oauth.rotateRefresh(first.refresh_hash, later, pair(later))).toBe('issued');
      expect(await countTokens()).toBe(3);
      expect(await store.oauth.getRefresh(first.refresh_hash)).toMatchObject({ used_at: later });
    });

    it('revokes a grant, lists it, and keeps the host map with denials', async () => {
      const [store] = await both();
      const { codeHash, grant } = await codeAndGrant(store.oauth, 'grt_list');
      const tokens = pair();
      await store.oauth.redeemCode(codeHash, NOW, grant, tokens);
      const refresh = await store.oauth.getRefresh(tokens.refresh_hash);
      expect(refresh).toMatchObject({
        used_at: null,
        expires_at: NOW + 86_400_000,
        grant: { id: 'grt_list' },
      });
      expect(await store.oauth.revokeGrant('grt_list', NOW + 5, 'revoked by token revoke')).toBe(true);
      expect(await store.oauth.revokeGrant('grt_list', NOW + 6, 'again')).toBe(false);
      expect(await store.oauth.verifyAccess(tokens.access_hash, NOW + 7)).toBeUndefined();
      expect(await store.oauth.getRefresh(tokens.refresh_hash)).toBeUndefined();

      await store.oauth.setHostRule('chatgpt.com', null, NOW);
      await store.oauth.setHostRule('bot.example', 'telegram', NOW);
      await store.oauth.setHostRule('bot.example', 'whatsapp', NOW + 1);
      expect(await store.oauth.hostRules()).toEqual([
        { host: 'bot.example', channel: 'whatsapp', updated_at: NOW + 1 },
        { host: 'chatgpt.com', channel: null, updated_at: NOW },
      ]);
    });
  });
}

const dir = tempDir('stocklock-oauth-store-');
afterAll(() => dir.remove());
let files = 0;
let sqlitePath = '';
describeOAuthStore(
  'SQLite',
  async () => {
    sqlitePath = `${dir.dir}/oauth-${files++}.db`;
    return [openSqliteStore(sqlitePath, storeOptions()), openSqliteStore(sqlitePath, storeOptions())];
  },
  async () => {
    const db = new Database(sqlitePath, { readonly: true });
    try {
      return (db.prepare('SELECT count(*) AS n FROM oauth_tokens').get() as { n: number }).n;
    } finally {
      db.close();
    }
  },
);

describePostgres('PostgreSQL', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase('stocklock_oauth');
  });
  afterAll(async () => {
    await db?.drop();
  });
  describeOAuthStore(
    'PostgreSQL',
    async () => {
      const first = await openPostgresStore(db.url, storeOptions());
      await db.reset();
      return [first, await openPostgresStore(db.url, storeOptions())];
    },
    async () => (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM oauth_tokens'))[0]?.n ?? -1,
  );
});
