// Throwaway PostgreSQL databases for tests: one uniquely named database per test file, dropped afterwards.
import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The maintenance database to create test databases from; STOCKLOCK_TEST_POSTGRES_URL overrides it. */
export const POSTGRES_ADMIN_URL =
  process.env.STOCKLOCK_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** Every table the store owns, for a fast reset between tests (TRUNCATE beats a new database by far). */
const TABLES = [
  'order_lines',
  'orders',
  'cart_lines',
  'carts',
  'channel_holds',
  'stock_movements',
  'idempotency_records',
  'api_tokens',
  'products',
  'oauth_tokens',
  'oauth_grants',
  'oauth_codes',
  'oauth_clients',
  'oauth_hosts',
  'console_sessions',
  'channels',
  'audit_checkpoints',
  'mcp_sessions',
];

/** Why PostgreSQL cannot be used, or undefined when it answers. */
export async function postgresUnavailable(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: POSTGRES_ADMIN_URL, connectionTimeoutMillis: 3_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return undefined;
  } catch (error) {
    return `PostgreSQL at ${redact(POSTGRES_ADMIN_URL)} is not answering (${(error as Error).message})`;
  } finally {
    await client.end().catch(() => undefined);
  }
}

function redact(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '***';
  return parsed.toString();
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: POSTGRES_ADMIN_URL });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export interface TestDatabase {
  name: string;
  url: string;
  /** Empties every store table (the schema and its migration record stay). */
  reset(): Promise<void>;
  /** One statement on a short-lived connection: for tampering and inspection. */
  query<T extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, values?: unknown[]): Promise<T[]>;
  /** A dedicated connection; the caller ends it. */
  connect(): Promise<pg.Client>;
  drop(): Promise<void>;
}

export async function createTestDatabase(prefix = 'stocklock_test'): Promise<TestDatabase> {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  await admin((client) => client.query(`CREATE DATABASE "${name}"`));
  const url = new URL(POSTGRES_ADMIN_URL);
  url.pathname = `/${name}`;
  const connect = async () => {
    const client = new pg.Client({ connectionString: url.toString() });
    client.on('error', () => undefined);
    await client.connect();
    return client;
  };
  const query = async <T extends pg.QueryResultRow>(sql: string, values: unknown[] = []) => {
    const client = await connect();
    try {
      return (await client.query<T>(sql, values)).rows;
    } finally {
      await client.end();
    }
  };
  return {
    name,
    url: url.toString(),
    connect,
    query,
    async reset() {
      await query(`TRUNCATE ${TABLES.join(', ')} RESTART IDENTITY CASCADE`);
    },
    async drop() {
      // FORCE ends connections a failed test may have left open.
      await admin((client) => client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
    },
  };
}
