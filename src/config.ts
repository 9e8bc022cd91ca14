// Shared command-line options; each has a STOCKLOCK_ environment twin (flags beat environment beat defaults).
import { type Command, Option } from 'commander';
import { systemClock } from './domain/clock.js';
import { DEFAULT_LIMITS, MAX_RESERVATION_TTL_MS, parseDuration } from './domain/rules.js';
import type { StoreOptions } from './storage/store.js';

export interface StoreFlags {
  db: string;
  reservationTtl: string;
  lockTimeout: string;
  synchronous: 'FULL' | 'NORMAL';
  maxLineQuantity: string;
  maxCartQuantity: string;
  maxChannelReserved: string;
  maxHolderReserved: string;
  poolSize: string;
}

function boundedDuration(text: string, flag: string, maxMs: number): number {
  const ms = parseDuration(text);
  if (ms > maxMs) throw new Error(`${flag} must be at most ${maxMs / 86_400_000} days, got "${text}"`);
  return ms;
}

function positiveInteger(text: string, flag: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1)
    throw new Error(`${flag} must be a whole number of at least 1, got "${text}"`);
  return value;
}

export function addStoreOptions(command: Command): Command {
  return command
    .addOption(
      new Option('--db <path|url>', 'SQLite file path or postgres:// URL')
        .env('STOCKLOCK_DB')
        .default('./stocklock.db'),
    )
    .addOption(
      new Option('--reservation-ttl <duration>', 'how long add_to_cart holds stock (90s, 15m, 2h or seconds)')
        .env('STOCKLOCK_RESERVATION_TTL')
        .default('15m'),
    )
    .addOption(
      new Option(
        '--lock-timeout <duration>',
        'longest a write may wait, all its waits together, before STORE_BUSY',
      )
        .env('STOCKLOCK_LOCK_TIMEOUT')
        .default('5s'),
    )
    .addOption(
      new Option('--synchronous <level>', 'SQLite durability: FULL survives power loss, NORMAL only a crash')
        .env('STOCKLOCK_SYNCHRONOUS')
        .choices(['FULL', 'NORMAL'])
        .default('FULL'),
    )
    .addOption(
      new Option('--max-line-quantity <n>', 'most units of one SKU per cart')
        .env('STOCKLOCK_MAX_LINE_QUANTITY')
        .default(String(DEFAULT_LIMITS.maxLineQuantity)),
    )
    .addOption(
      new Option('--max-cart-quantity <n>', 'most units per cart')
        .env('STOCKLOCK_MAX_CART_QUANTITY')
        .default(String(DEFAULT_LIMITS.maxCartQuantity)),
    )
    .addOption(
      new Option('--max-channel-reserved <n>', 'most units one channel may hold in open carts at once')
        .env('STOCKLOCK_MAX_CHANNEL_RESERVED')
        .default(String(DEFAULT_LIMITS.maxChannelReserved)),
    )
    .addOption(
      new Option(
        '--max-holder-reserved <n>',
        'most units one OAuth shopper (grant) may hold in open carts at once',
      )
        .env('STOCKLOCK_MAX_HOLDER_RESERVED')
        .default(String(DEFAULT_LIMITS.maxHolderReserved)),
    )
    .addOption(
      new Option('--pool-size <n>', 'PostgreSQL connections per process')
        .env('STOCKLOCK_POOL_SIZE')
        .default('10'),
    );
}

export function storeOptions(flags: StoreFlags): StoreOptions {
  return {
    clock: systemClock,
    reservationTtlMs: boundedDuration(flags.reservationTtl, '--reservation-ttl', MAX_RESERVATION_TTL_MS),
    lockTimeoutMs: parseDuration(flags.lockTimeout),
    synchronous: flags.synchronous,
    limits: {
      maxLineQuantity: positiveInteger(flags.maxLineQuantity, '--max-line-quantity'),
      maxCartQuantity: positiveInteger(flags.maxCartQuantity, '--max-cart-quantity'),
      maxChannelReserved: positiveInteger(flags.maxChannelReserved, '--max-channel-reserved'),
      maxHolderReserved: positiveInteger(flags.maxHolderReserved, '--max-holder-reserved'),
    },
    poolSize: positiveInteger(flags.poolSize, '--pool-size'),
  };
}

export const CHANNEL_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export function assertChannel(channel: string): string {
  if (!CHANNEL_PATTERN.test(channel)) {
    throw new Error(`channel "${channel}" must be 1-64 of a-z 0-9 . _ - (e.g. web, telegram, voice)`);
  }
  return channel;
}
