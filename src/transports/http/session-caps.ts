// Which session makes room at a cap: never one with a request in flight, and the longest idle of the rest.

export interface Evictable {
  inFlight: number;
  lastActive: number;
  identity: { credentialId: string };
}

/** The session that has waited longest without a request, among those with none in flight. */
export function longestIdle<S extends Evictable>(sessions: Iterable<S>): S | undefined {
  let victim: S | undefined;
  for (const session of sessions) {
    if (session.inFlight === 0 && (!victim || session.lastActive < victim.lastActive)) victim = session;
  }
  return victim;
}

/**
 * At the server's cap: the longest-idle session of the credential holding the most (`held`), so that whoever
 * holds many sessions loses one of theirs before someone holding one loses theirs.
 */
export function evictionCandidate<S extends Evictable>(
  sessions: Iterable<S>,
  held: (credentialId: string) => number,
): S | undefined {
  let victim: S | undefined;
  let victimGroup = 0;
  for (const session of sessions) {
    if (session.inFlight > 0) continue;
    const group = held(session.identity.credentialId);
    if (!victim || group > victimGroup || (group === victimGroup && session.lastActive < victim.lastActive)) {
      victim = session;
      victimGroup = group;
    }
  }
  return victim;
}
