// The store's flags as `serve` reads them: --max-hold's default and its refusal below the TTL.
import { describe, expect, it } from 'vitest';
import { storeOptions } from '../src/config.js';

describe('--max-hold', () => {
  it.each([
    ['unset: one hour', {}, 3_600_000],
    ['unset with a longer TTL: the TTL', { reservationTtl: '2h' }, 7_200_000],
    ['set', { maxHold: '30m' }, 1_800_000],
    ['set equal to the TTL', { reservationTtl: '20m', maxHold: '20m' }, 1_200_000],
  ])('%s', (_name, flags, expected) => {
    expect(storeOptions({ db: 'x.db', ...flags }).maxHoldMs).toBe(expected);
  });

  it('refuses a max hold shorter than the reservation TTL, naming both', () => {
    expect(() => storeOptions({ db: 'x.db', reservationTtl: '15m', maxHold: '10m' })).toThrow(
      /--max-hold \(10m\) must be at least --reservation-ttl \(900s\)/,
    );
  });
});
