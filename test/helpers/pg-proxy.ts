// A TCP proxy in front of PostgreSQL that ends one connection at its COMMIT with pg_terminate_backend, so a test
// can make a commit's outcome unknown on a real server, at the exact moment, the commit done or not.
import net from 'node:net';
import pg from 'pg';

/** before_commit: the COMMIT never reaches the server; after_commit: it commits, and its answer is lost. */
export type CommitFault = 'before_commit' | 'after_commit';

export interface PgProxy {
  /** `targetUrl` with its host and port replaced by the proxy's. */
  url: string;
  /**
   * The next COMMIT through the proxy, on any connection, trips the fault: its backend is terminated with
   * pg_terminate_backend (before the COMMIT is forwarded, or once the server has answered it, withholding the
   * answer), so the client sees only the termination. Resolves with the backend's pid once it is gone.
   * With `marker`, only a transaction that sent those bytes (e.g. its idempotency key) trips it, so a background
   * sweep committing meanwhile does not.
   */
  failNextCommit(fault: CommitFault, marker?: string): Promise<number>;
  /**
   * The next autocommit statement whose bytes contain `marker` runs and commits, and its answer is lost: once the
   * server is ready for the next query, the backend is terminated and the client hears only that.
   */
  failAfterStatement(marker: string): Promise<number>;
  close(): Promise<void>;
}

/** Splits one direction of the protocol into whole messages; the client's first (startup) message has no type byte. */
class MessageSplitter {
  private buffer = Buffer.alloc(0);
  constructor(private untyped: boolean) {}

  push(chunk: Buffer): Buffer[] {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    const messages: Buffer[] = [];
    for (;;) {
      const header = this.untyped ? 0 : 1;
      if (this.buffer.length < header + 4) return messages;
      const total = header + this.buffer.readInt32BE(header);
      if (this.buffer.length < total) return messages;
      messages.push(this.buffer.subarray(0, total));
      this.buffer = this.buffer.subarray(total);
      this.untyped = false;
    }
  }
}

const type = (message: Buffer) => String.fromCharCode(message[0] ?? 0);
/** The NUL-terminated string a 'Q' (query) or 'C' (command complete) message carries. */
const body = (message: Buffer) => message.subarray(5, message.indexOf(0, 5)).toString('utf8');

export async function startPgProxy(targetUrl: string): Promise<PgProxy> {
  const target = new URL(targetUrl);
  let armed:
    | { fault: CommitFault; marker?: Buffer; tripped: (pid: number) => void; failed: (error: Error) => void }
    | undefined;
  let armedStatement:
    | { marker: Buffer; tripped: (pid: number) => void; failed: (error: Error) => void }
    | undefined;
  const sockets = new Set<net.Socket>();

  const terminate = async (pid: number) => {
    const adminClient = new pg.Client({ connectionString: targetUrl });
    await adminClient.connect();
    try {
      // The second argument waits (up to 5 s) until the backend has really exited.
      await adminClient.query('SELECT pg_terminate_backend($1, 5000)', [pid]);
    } finally {
      await adminClient.end();
    }
  };

  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    sockets.add(client);
    sockets.add(upstream);
    let pid = 0;
    let commitSent: typeof armed;
    let statementSent: typeof armedStatement;
    let answerWithheld = false;
    let markerSeen = false;
    const fromClient = new MessageSplitter(true);
    const fromServer = new MessageSplitter(false);

    client.on('data', (chunk: Buffer) => {
      for (const message of fromClient.push(chunk)) {
        if (armedStatement && message.includes(armedStatement.marker)) {
          statementSent = armedStatement;
          armedStatement = undefined;
        }
        const trip = armed;
        if (trip?.marker && message.includes(trip.marker)) markerSeen = true;
        const isCommit = type(message) === 'Q' && body(message).trim().toUpperCase() === 'COMMIT';
        if (isCommit && trip && (!trip.marker || markerSeen)) {
          armed = undefined;
          if (trip.fault === 'before_commit') {
            // The transaction is still open on the server: terminating the backend rolls it back.
            terminate(pid).then(() => trip.tripped(pid), trip.failed);
            continue;
          }
          commitSent = trip;
        }
        if (isCommit) markerSeen = false;
        upstream.write(message);
      }
    });
    upstream.on('data', (chunk: Buffer) => {
      for (const message of fromServer.push(chunk)) {
        if (type(message) === 'K') pid = message.readInt32BE(5);
        const statement = statementSent;
        if (statement) {
          // Everything the statement answers is withheld; ready for the next query means it committed.
          answerWithheld = true;
          if (type(message) === 'Z') {
            statementSent = undefined;
            terminate(pid).then(() => statement.tripped(pid), statement.failed);
          }
        }
        const trip = commitSent;
        if (trip && type(message) === 'C' && body(message) === 'COMMIT') {
          // Committed: the client must not hear so. Only the termination's FATAL error reaches it.
          commitSent = undefined;
          answerWithheld = true;
          terminate(pid).then(() => trip.tripped(pid), trip.failed);
        }
        if (answerWithheld && type(message) !== 'E') continue;
        client.write(message);
      }
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    for (const socket of [client, upstream]) {
      socket.on('close', end);
      socket.on('error', end);
    }
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = new URL(targetUrl);
  url.hostname = '127.0.0.1';
  url.port = String((server.address() as net.AddressInfo).port);

  return {
    url: url.toString(),
    failNextCommit(fault, marker) {
      return new Promise<number>((tripped, failed) => {
        armed = { fault, tripped, failed, ...(marker ? { marker: Buffer.from(marker) } : {}) };
      });
    },
    failAfterStatement(marker) {
      return new Promise<number>((tripped, failed) => {
        armedStatement = { marker: Buffer.from(marker), tripped, failed };
      });
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
