// Shared command-line options; each has a STOCKLOCK_ environment twin (flags beat environment beat defaults).
import { type Command, Option } from 'commander';
import { systemClock } from './domain/clock.js';
import { DEFAULT_RATE_LIMITS, formatRate, parseRate, type RateLimits } from './domain/limits.js';
import {
  DEFAULT_LIMITS,
  MAX_PAYMENT_WINDOW_MS,
  MAX_RESERVATION_TTL_MS,
  maxHoldOf,
  parseDuration,
} from './domain/rules.js';
import type { StoreOptions } from './storage/store.js';

/** The store's flags. Only `serve` and `start` take them all; other commands take the few they use. */
export interface StoreFlags {
  db: string;
  reservationTtl?: string;
  maxHold?: string;
  lockTimeout?: string;
  synchronous?: 'FULL' | 'NORMAL';
  maxLineQuantity?: string;
  maxCartQuantity?: string;
  maxChannelReserved?: string;
  maxHolderReserved?: string;
  poolSize?: string;
  rateConsent?: string;
  rateRegister?: string;
  rateTokenGrant?: string;
  rateTokenCode?: string;
  rateConsoleSignIn?: string;
  rateNewCarts?: string;
  paymentWindow?: string;
}

/** Each rate limit's flag, its environment twin, and what it counts. */
const RATE_FLAGS: { key: keyof RateLimits; flag: string; attr: keyof StoreFlags; what: string }[] = [
  {
    key: 'consent',
    flag: 'rate-consent',
    attr: 'rateConsent',
    what: 'consent form posts (new OAuth grants) per client address',
  },
  {
    key: 'register',
    flag: 'rate-register',
    attr: 'rateRegister',
    what: 'OAuth client registrations per client address',
  },
  {
    key: 'tokenPerGrant',
    flag: 'rate-token-grant',
    attr: 'rateTokenGrant',
    what: 'token refreshes per OAuth grant',
  },
  {
    key: 'tokenPerCode',
    flag: 'rate-token-code',
    attr: 'rateTokenCode',
    what: 'token requests per authorization code',
  },
  {
    key: 'consoleSignIn',
    flag: 'rate-console-sign-in',
    attr: 'rateConsoleSignIn',
    what: 'failed console sign-ins per client address',
  },
  {
    key: 'newCarts',
    flag: 'rate-new-carts',
    attr: 'rateNewCarts',
    what: 'new carts per OAuth shopper (grant)',
  },
];

const DEFAULTS = {
  reservationTtl: '15m',
  lockTimeout: '5s',
  synchronous: 'FULL',
  maxLineQuantity: String(DEFAULT_LIMITS.maxLineQuantity),
  maxCartQuantity: String(DEFAULT_LIMITS.maxCartQuantity),
  maxChannelReserved: String(DEFAULT_LIMITS.maxChannelReserved),
  maxHolderReserved: String(DEFAULT_LIMITS.maxHolderReserved),
  poolSize: '10',
  paymentWindow: '30m',
} as const;

function boundedDuration(text: string, flag: string, maxMs: number): number {
  const ms = parseDuration(text);
  if (ms > maxMs) throw new Error(`${flag} must be at most ${maxMs / 86_400_000} days, got "${text}"`);
  return ms;
}

/** --max-hold: unset, the default (or the TTL when longer); set, never shorter than the TTL. */
function maxHold(text: string | undefined, reservationTtlMs: number): number {
  if (text === undefined) return maxHoldOf({ reservationTtlMs });
  const ms = boundedDuration(text, '--max-hold', MAX_RESERVATION_TTL_MS);
  if (ms < reservationTtlMs) {
    throw new Error(
      `--max-hold (${text}) must be at least --reservation-ttl (${reservationTtlMs / 1_000}s): a cart could not hold for even one TTL`,
    );
  }
  return ms;
}

function positiveInteger(text: string, flag: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1)
    throw new Error(`${flag} must be a whole number of at least 1, got "${text}"`);
  return value;
}

const dbOption = () =>
  new Option('--db <path|url>', 'SQLite file path or postgres:// URL')
    .env('STOCKLOCK_DB')
    .default('./stocklock.db');
const lockTimeoutOption = () =>
  new Option(
    '--lock-timeout <duration>',
    'longest a write may wait, all its waits together, before STORE_BUSY',
  )
    .env('STOCKLOCK_LOCK_TIMEOUT')
    .default(DEFAULTS.lockTimeout);
const synchronousOption = () =>
  new Option('--synchronous <level>', 'SQLite durability: FULL survives power loss, NORMAL only a crash')
    .env('STOCKLOCK_SYNCHRONOUS')
    .choices(['FULL', 'NORMAL'])
    .default(DEFAULTS.synchronous);
/** `--db` alone: for commands that only read (stock, audit, token list, backup, migrate). */
export function addDbOption(command: Command): Command {
  return command.addOption(dbOption());
}

/** `--db` and what a one-off write needs: how long to wait for the lock, and how durably to commit. */
export function addWriteOptions(command: Command): Command {
  return command.addOption(dbOption()).addOption(lockTimeoutOption()).addOption(synchronousOption());
}

/** Every store flag: for the server, where reservations, caps and the pool apply. */
export function addStoreOptions(command: Command): Command {
  addWriteOptions(command)
    .addOption(
      new Option('--reservation-ttl <duration>', 'how long add_to_cart holds stock (90s, 15m, 2h or seconds)')
        .env('STOCKLOCK_RESERVATION_TTL')
        .default(DEFAULTS.reservationTtl),
    )
    .addOption(
      new Option(
        '--max-hold <duration>',
        'longest a cart holds stock from its first hold, however often it is added to (default 1h, or the TTL when that is longer)',
      ).env('STOCKLOCK_MAX_HOLD'),
    )
    .addOption(
      new Option('--max-line-quantity <n>', 'most units of one SKU per cart')
        .env('STOCKLOCK_MAX_LINE_QUANTITY')
        .default(DEFAULTS.maxLineQuantity),
    )
    .addOption(
      new Option('--max-cart-quantity <n>', 'most units per cart')
        .env('STOCKLOCK_MAX_CART_QUANTITY')
        .default(DEFAULTS.maxCartQuantity),
    )
    .addOption(
      new Option('--max-channel-reserved <n>', 'most units one channel may hold in open carts at once')
        .env('STOCKLOCK_MAX_CHANNEL_RESERVED')
        .default(DEFAULTS.maxChannelReserved),
    )
    .addOption(
      new Option(
        '--max-holder-reserved <n>',
        'most units one OAuth shopper (grant) may hold in open carts at once',
      )
        .env('STOCKLOCK_MAX_HOLDER_RESERVED')
        .default(DEFAULTS.maxHolderReserved),
    )
    .addOption(
      new Option(
        '--payment-window <duration>',
        'how long an order in a payment channel awaits its payment, its items held (30m, 2h)',
      )
        .env('STOCKLOCK_PAYMENT_WINDOW')
        .default(DEFAULTS.paymentWindow),
    )
    .addOption(
      new Option('--pool-size <n>', 'PostgreSQL connections per process')
        .env('STOCKLOCK_POOL_SIZE')
        .default(DEFAULTS.poolSize),
    );
  for (const { key, flag, what } of RATE_FLAGS) {
    command.addOption(
      new Option(`--${flag} <count/window>`, `most ${what}, e.g. 30/10m, or off`)
        .env(`STOCKLOCK_${flag.toUpperCase().replaceAll('-', '_')}`)
        .default(formatRate(DEFAULT_RATE_LIMITS[key])),
    );
  }
  return command;
}

function rateLimits(flags: StoreFlags): RateLimits {
  const limits = { ...DEFAULT_RATE_LIMITS };
  for (const { key, flag, attr } of RATE_FLAGS) {
    const text = flags[attr];
    if (typeof text === 'string') limits[key] = parseRate(text, `--${flag}`);
  }
  return limits;
}

export function storeOptions(given: StoreFlags): StoreOptions {
  const flags = { ...DEFAULTS, ...given };
  const reservationTtlMs = boundedDuration(flags.reservationTtl, '--reservation-ttl', MAX_RESERVATION_TTL_MS);
  return {
    clock: systemClock,
    reservationTtlMs,
    maxHoldMs: maxHold(flags.maxHold, reservationTtlMs),
    lockTimeoutMs: parseDuration(flags.lockTimeout),
    synchronous: flags.synchronous,
    limits: {
      maxLineQuantity: positiveInteger(flags.maxLineQuantity, '--max-line-quantity'),
      maxCartQuantity: positiveInteger(flags.maxCartQuantity, '--max-cart-quantity'),
      maxChannelReserved: positiveInteger(flags.maxChannelReserved, '--max-channel-reserved'),
      maxHolderReserved: positiveInteger(flags.maxHolderReserved, '--max-holder-reserved'),
    },
    poolSize: positiveInteger(flags.poolSize, '--pool-size'),
    rateLimits: rateLimits(given),
    paymentWindowMs: boundedDuration(flags.paymentWindow, '--payment-window', MAX_PAYMENT_WINDOW_MS),
  };
}

export const CHANNEL_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export function assertChannel(channel: string): string {
  if (!CHANNEL_PATTERN.test(channel)) {
    throw new Error(`channel "${channel}" must be 1-64 of a-z 0-9 . _ - (e.g. web, telegram, voice)`);
  }
  return channel;
}

/** The payment flags (src/payments/setup.ts turns them into a provider); Stripe's keys come from the environment. */
export interface PaymentFlags {
  payment?: 'manual' | 'link' | 'stripe';
  paymentUrl?: string;
  paymentInstructions?: string;
  paymentSecret?: string;
  paymentSuccessUrl?: string;
  paymentCancelUrl?: string;
}

export function addPaymentOptions(command: Command): Command {
  return command
    .addOption(
      new Option('--payment <provider>', 'where shoppers of payment-mode channels pay')
        .env('STOCKLOCK_PAYMENT')
        .choices(['manual', 'link', 'stripe'])
        .default('manual'),
    )
    .addOption(
      new Option(
        '--payment-url <template>',
        'link: your pay page, with {order_id}, {total_minor}, {currency} and {signature}',
      ).env('STOCKLOCK_PAYMENT_URL'),
    )
    .addOption(
      new Option(
        '--payment-instructions <text>',
        'manual: how to pay (bank transfer details, pay on pickup)',
      ).env('STOCKLOCK_PAYMENT_INSTRUCTIONS'),
    )
    .addOption(
      new Option(
        '--payment-secret <whsec>',
        'link: signs pay links and verifies payment webhooks (whsec_ + base64); prefer the environment variable',
      ).env('STOCKLOCK_PAYMENT_SECRET'),
    )
    .addOption(
      new Option(
        '--payment-success-url <url>',
        'stripe: where Checkout returns after paying ({order_id} filled in)',
      ).env('STOCKLOCK_PAYMENT_SUCCESS_URL'),
    )
    .addOption(
      new Option('--payment-cancel-url <url>', "stripe: Checkout's back link ({order_id} filled in)").env(
        'STOCKLOCK_PAYMENT_CANCEL_URL',
      ),
    );
}
