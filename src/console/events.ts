// The console's live feed: one server-sent event stream per open page, told when any writer changed the data.
import type { Response } from 'express';
import { type Clock, systemClock } from '../domain/clock.js';
import type { ConsoleQueries } from '../storage/console-queries.js';

interface Stream {
  res: Response;
  /** False once the page's session ended: the stream then says so and closes. */
  live: () => boolean;
}

/** Changes closer together than this reach the pages as one event: a race must not flood them. */
export const DEFAULT_THROTTLE_MS = 250;
const HEARTBEAT_MS = 20_000;

/**
 * Pages are told *that* something changed, and fetch what they show: the data is pushed as a signal,
 * never polled for, and one event serves every page whatever it shows.
 */
export class ChangeFeed {
  private readonly streams = new Set<Stream>();
  private unsubscribe: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastSent = 0;
  private readonly heartbeat: NodeJS.Timeout;

  /**
   * `beforeEmit` runs once per change before the pages hear of it: the console rechecks its sessions'
   * tokens there, so a token revoked anywhere (the CLI, another server) closes its pages at once. `clock` tells
   * the time of the last event (the console passes the store's).
   */
  constructor(
    private readonly queries: ConsoleQueries,
    private readonly throttleMs = DEFAULT_THROTTLE_MS,
    private readonly beforeEmit: () => Promise<void> = async () => undefined,
    private readonly clock: Clock = systemClock,
  ) {
    this.heartbeat = setInterval(() => this.beat(), HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  get size(): number {
    return this.streams.size;
  }

  open(res: Response, live: () => boolean): void {
    res.status(200).set({
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    res.flushHeaders();
    const stream: Stream = { res, live };
    this.streams.add(stream);
    res.write('retry: 2000\nevent: ready\ndata: {}\n\n');
    res.on('close', () => {
      this.streams.delete(stream);
      if (this.streams.size === 0) this.stopWatching();
    });
    this.unsubscribe ??= this.queries.watch(() => this.changed());
  }

  /** Ends the streams whose session ended (sign-out, revocation), without waiting for a change. */
  sweep(): void {
    for (const stream of [...this.streams]) if (!stream.live()) this.signOut(stream);
  }

  close(): void {
    clearInterval(this.heartbeat);
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const stream of [...this.streams]) stream.res.end();
    this.streams.clear();
    this.stopWatching();
  }

  private changed(): void {
    if (this.timer) return;
    const wait = Math.max(0, this.lastSent + this.throttleMs - this.clock.now());
    this.timer = setTimeout(async () => {
      await this.beforeEmit().catch(() => undefined);
      this.timer = undefined;
      this.lastSent = this.clock.now();
      const data = `event: change\ndata: ${JSON.stringify({ at: this.lastSent })}\n\n`;
      for (const stream of [...this.streams]) {
        if (stream.live()) stream.res.write(data);
        else this.signOut(stream);
      }
    }, wait);
    this.timer.unref();
  }

  private beat(): void {
    for (const stream of [...this.streams]) {
      if (stream.live()) stream.res.write(': keep-alive\n\n');
      else this.signOut(stream);
    }
  }

  private signOut(stream: Stream): void {
    this.streams.delete(stream);
    stream.res.end('event: signed-out\ndata: {}\n\n');
  }

  private stopWatching(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }
}
