// `stocklock oauth allow|list|deny`: which OAuth hosts (ChatGPT, Claude, …) may sign in, and as which channel.
import type { Command } from 'commander';
import { allowHost, denyHost, hostLines } from '../auth/admin.js';
import { addStoreOptions, assertChannel, type StoreFlags } from '../config.js';
import { withStore } from './shared.js';

export function addOAuthCommands(program: Command): void {
  const oauth = program
    .command('oauth')
    .description('which OAuth hosts (ChatGPT, Claude, …) may sign in, and as which channel');
  addStoreOptions(
    oauth
      .command('allow')
      .argument('<host>', 'the host of the redirect URIs, e.g. chatgpt.com')
      .requiredOption('--channel <name>', 'the sales channel its grants sell as')
      .description('let clients returning to HOST sign in, selling as --channel'),
  ).action(async (host: string, flags: StoreFlags & { channel: string }) => {
    const channel = assertChannel(flags.channel);
    const allowed = await withStore(flags, (store) =>
      allowHost(store.oauth, host, channel, store.options.clock.now()),
    );
    process.stdout.write(`Clients returning to ${allowed} may sign in as channel "${channel}".\n`);
  });
  addStoreOptions(oauth.command('list').description('the host map: presets and your rules')).action(
    async (flags: StoreFlags) => {
      const lines = await withStore(flags, (store) => hostLines(store.oauth));
      process.stdout.write(`${lines.join('\n')}\n`);
    },
  );
  addStoreOptions(
    oauth
      .command('deny')
      .argument('<host>', 'the host to refuse, e.g. chatgpt.com')
      .description('refuse new sign-ins from HOST (existing grants stay until token revoke)'),
  ).action(async (host: string, flags: StoreFlags) => {
    const denied = await withStore(flags, (store) => denyHost(store.oauth, host, store.options.clock.now()));
    process.stdout.write(`Clients returning to ${denied} may no longer sign in.\n`);
  });
}
