// Which session makes room at a cap: never one with a request in flight, and the longest idle of the rest.

export interface Evictable {
  inFlight: number;
  lastActive: number;
  identity: { credentialId: string; holder?: string | undefined };
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
 * At the server's cap: an OAuth grant's session before a static token's, then the longest-idle session of
 * the credential holding the most (`held`), so that whoever holds many sessions loses one of theirs before
 * someone holding one loses theirs. Grants go first because anyone who clicks Allow gets one and one party can
 * hold dozens, each under the per-credential cap: spread over them, its sessions would otherwise outnumber a
 * merchant's token serving many customers and take that token's sessions.
 */
export function evictionCandidate<S extends Evictable>(
  sessions: Iterable<S>,
  held: (credentialId: string) => number,
): S | undefined {
  let victim: S | undefined;
  let victimRank = [0, 0];
  for (const session of sessions) {
    if (session.inFlight > 0) continue;
    const granted = session.identity.holder !== undefined ? 1 : 0;
    const group = held(session.identity.credentialId);
    const [victimGranted = 0, victimGroup = 0] = victimRank;
    if (
      !victim ||
      granted > victimGranted ||
      (granted === victimGranted &&
        (group > victimGroup || (group === victimGroup && session.lastActive < victim.lastActive)))
    ) {
      victim = session;
      victimRank = [granted, group];
    }
  }
  return victim;
}
