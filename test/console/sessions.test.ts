// Console sessions: only the secret's hash is kept; sessions end at their absolute and idle limits and on revocation.
import { describe, expect, it } from 'vitest';
import { SessionTable, sameSecret } from '../../src/console/sessions.js';
import { hashToken } from '../../src/storage/shared.js';

function table(ttlMs = 10_000, idleMs = 3_000) {
  let now = 1_000_000;
  const sessions = new SessionTable({ ttlMs, idleMs }, () => now);
  return { sessions, advance: (ms: number) => (now += ms) };
}

describe('console sessions', () => {
  it('keeps the hash of the cookie secret, never the secret', () => {
    const { sessions } = table();
    const { secret, session } = sessions.create('tok_a', 'ops');
    const kept = (sessions as unknown as { sessions: Map<string, unknown> }).sessions;
    expect([...kept.keys()]).toEqual([hashToken(secret)]);
    expect(JSON.stringify(session)).not.toContain(secret);
    expect(sessions.find(secret)).toBe(session);
    expect(sessions.find(`${secret}x`)).toBeUndefined();
    expect(sessions.find(undefined)).toBeUndefined();
  });

  it('ends a session left idle, and one past its lifetime however busy', () => {
    const { sessions, advance } = table();
    const idle = sessions.create('tok_a', 'ops');
    const busy = sessions.create('tok_a', 'ops');
    advance(2_000);
    expect(sessions.find(busy.secret)).toBeDefined();
    advance(1_500);
    expect(sessions.find(idle.secret)).toBeUndefined();
    expect(idle.session.ended).toBe(true);
    expect(sessions.find(busy.secret)).toBeDefined();
    for (let i = 0; i < 3; i++) {
      advance(2_000);
      expect(sessions.find(busy.secret)).toBeDefined();
    }
    advance(2_000);
    expect(sessions.find(busy.secret)).toBeUndefined();
  });

  it('ends every session of a revoked token and a signed-out one', () => {
    const { sessions } = table();
    const a = sessions.create('tok_a', 'ops');
    const b = sessions.create('tok_a', 'ops');
    const c = sessions.create('tok_c', 'ops');
    sessions.deleteByToken('tok_a');
    expect(sessions.find(a.secret)).toBeUndefined();
    expect(sessions.find(b.secret)).toBeUndefined();
    expect(sessions.live(b.session)).toBe(false);
    expect(sessions.find(c.secret)).toBeDefined();
    sessions.delete(c.secret);
    expect(sessions.live(c.session)).toBe(false);
  });

  it('compares CSRF tokens exactly', () => {
    expect(sameSecret('abc', 'abc')).toBe(true);
    expect(sameSecret('abd', 'abc')).toBe(false);
    expect(sameSecret('ab', 'abc')).toBe(false);
    expect(sameSecret(undefined, 'abc')).toBe(false);
  });
});
