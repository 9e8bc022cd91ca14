// The tool descriptions are the model's prompt: every tool as a client lists it, pinned in a readable file per
// tool under __toolsnaps__/, so a changed word fails here until the snapshot is updated on purpose (-u).
import { readdirSync } from 'node:fs';
import type { Tool } from '@modelcontextprotocol/sdk/types.js';
import { describe, expect, it } from 'vitest';
import { connect } from '../helpers/mcp.js';
import { sqliteStore } from '../helpers/sqlite.js';

const SNAPSHOTS = new URL('./__toolsnaps__/', import.meta.url);

interface Listed {
  tool: Tool;
  /** The connections that list it, in the order asked. */
  connections: string[];
  /** How another connection lists the same tool, when that differs. */
  differs?: { connection: string; tool: Tool };
}

/** tools/list through real SDK clients on a customer and an admin connection. */
async function listTools(): Promise<Map<string, Listed>> {
  const { store } = await sqliteStore();
  try {
    const listings = {
      customer: (await (await connect(store, 'web')).listTools()).tools,
      admin: (await (await connect(store, 'web', true)).listTools()).tools,
    };
    const tools = new Map<string, Listed>();
    for (const [connection, listed] of Object.entries(listings)) {
      for (const tool of listed) {
        const seen = tools.get(tool.name);
        if (!seen) tools.set(tool.name, { tool, connections: [connection] });
        else {
          seen.connections.push(connection);
          if (JSON.stringify(tool) !== JSON.stringify(seen.tool)) seen.differs = { connection, tool };
        }
      }
    }
    return tools;
  } finally {
    await store.close();
  }
}

/** What the model reads of one tool, and which connections list it. */
function snapshotOf({ tool, connections }: Listed): string {
  const { name, title, description, annotations, inputSchema, outputSchema, _meta } = tool;
  const shown = { name, title, description, connections, annotations, inputSchema, outputSchema, _meta };
  return `${JSON.stringify(shown, null, 2)}\n`;
}

describe('tools/list, pinned in test/mcp/__toolsnaps__/', async () => {
  const tools = await listTools();

  for (const [name, listed] of tools) {
    it(name, async () => {
      // One file per tool holds only while a tool reads the same on every connection that lists it.
      if (listed.differs)
        expect(listed.differs.tool, `as listed to ${listed.differs.connection}`).toEqual(listed.tool);
      await expect(snapshotOf(listed)).toMatchFileSnapshot(`./__toolsnaps__/${name}.json`);
    });
  }

  it('keeps no snapshot of a tool that no connection lists', () => {
    const stale = readdirSync(SNAPSHOTS)
      .filter((file) => file.endsWith('.json') && !tools.has(file.slice(0, -'.json'.length)))
      .map((file) => `test/mcp/__toolsnaps__/${file}`);
    expect(stale, 'delete these').toEqual([]);
  });
});
