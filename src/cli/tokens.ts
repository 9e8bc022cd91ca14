// `stocklock token create|list|revoke`: the HTTP credentials; a secret is printed once and only its hash stored.
import type { Command } from 'commander';
import { grantLine, grantRecord, isGrantId } from '../auth/admin.js';
import { addDbOption, addWriteOptions, assertChannel, type StoreFlags } from '../config.js';
import { describeDatabase } from '../storage/open.js';
import { printJson } from './output.js';
import { dbFlag, noteDatabase, withStore } from './shared.js';

export function addTokenCommands(program: Command): void {
  const token = program
    .command('token')
    .description('HTTP credentials: static tokens, one per channel, and OAuth grants');
  addWriteOptions(
    token
      .command('create')
      .requiredOption('--channel <name>', 'the sales channel this token speaks for')
      .option('--admin', 'also allow the admin tools')
      .option('--label <text>', 'a note for token list')
      .description('create a token and print it once (only its hash is stored)'),
  ).action(async (flags: StoreFlags & { channel: string; admin?: boolean; label?: string }) => {
    const channel = assertChannel(flags.channel);
    const issued = await withStore(flags, (store) =>
      store.createToken(channel, Boolean(flags.admin), flags.label),
    );
    process.stderr.write(
      `Created ${issued.record.id} for channel "${channel}"${flags.admin ? ' (admin)' : ''} in ${describeDatabase(flags.db)}. It is shown only now:\n`,
    );
    process.stdout.write(`${issued.token}\n`);
  });
  addDbOption(
    token
      .command('list')
      .option('--json', 'print JSON')
      .description('list static tokens and OAuth grants (never their secrets)'),
  ).action(async (flags: StoreFlags & { json?: boolean }) => {
    const [tokens, grants] = await withStore(
      flags,
      async (store) => [await store.listTokens(), (await store.oauth.listGrants()).map(grantRecord)] as const,
      { writes: false },
    );
    if (flags.json) {
      noteDatabase(flags.db);
      // Static tokens first, as before; grants after them, told apart by kind.
      printJson([...tokens.map((t) => ({ kind: 'token', ...t })), ...grants]);
      return;
    }
    if (tokens.length + grants.length > 0) process.stdout.write(`Tokens in ${describeDatabase(flags.db)}:\n`);
    for (const t of tokens) {
      const state = t.revoked_at ? `revoked ${t.revoked_at}` : `last used ${t.last_used_at ?? 'never'}`;
      process.stdout.write(
        `${t.id}  ${t.channel}${t.admin ? ' (admin)' : ''}  created ${t.created_at}  ${state}  ${t.label ?? ''}\n`,
      );
    }
    for (const g of grants) process.stdout.write(`${grantLine(g)}\n`);
    if (tokens.length === 0 && grants.length === 0)
      process.stdout.write(
        `No tokens in ${describeDatabase(flags.db)}. Create one with: stocklock token create --channel web${dbFlag(flags.db)}\n`,
      );
  });
  addWriteOptions(
    token
      .command('revoke')
      .argument('<id>', 'the token (tok_…) or grant (grt_…) id from token list')
      .description('revoke a token or an OAuth grant at once'),
  ).action(async (id: string, flags: StoreFlags) => {
    const revoked = await withStore(flags, (store) =>
      isGrantId(id)
        ? store.oauth.revokeGrant(id, store.options.clock.now(), 'revoked by token revoke')
        : store.revokeToken(id),
    );
    if (!revoked)
      throw new Error(`no live token with id "${id}" (see stocklock token list${dbFlag(flags.db)})`);
    process.stdout.write(`Revoked ${id} in ${describeDatabase(flags.db)}.\n`);
  });
}
