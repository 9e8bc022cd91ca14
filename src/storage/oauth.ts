// The OAuth part of the store contract: clients, codes, grants and their tokens, and the host-to-channel map.
/*
 * Every secret (authorization codes, access and refresh tokens, client secrets) reaches the store
 * only as its SHA-256 hash: the store never sees a secret it could leak. Timestamps are epoch ms.
 */

export type ClientKind = 'dcr' | 'cimd';

export interface StoredClient {
  client_id: string;
  kind: ClientKind;
  /** The registered (DCR) or fetched (CIMD) client metadata, as JSON text. */
  metadata: string;
  /** SHA-256 of the client secret of a confidential DCR client; null for public clients. */
  secret_hash: string | null;
  created_at: number;
  /** When a CIMD document was last fetched; the registration time for DCR clients. */
  fetched_at: number;
}

export interface StoredCode {
  code_hash: string;
  client_id: string;
  redirect_uri: string;
  code_challenge: string;
  scope: string;
  resource: string;
  channel: string;
  created_at: number;
  expires_at: number;
  /** Set when the code was exchanged; a second exchange revokes the grant it made. */
  used_at: number | null;
  grant_id: string | null;
}

export interface StoredGrant {
  id: string;
  client_id: string;
  /** The client's own name for itself, as registered; null when it gave none. */
  client_name: string | null;
  channel: string;
  scope: string;
  resource: string;
  redirect_host: string;
  created_at: number;
  last_used_at: number | null;
  revoked_at: number | null;
  revoke_reason: string | null;
}

export interface NewGrant {
  id: string;
  client_id: string;
  channel: string;
  scope: string;
  resource: string;
  redirect_host: string;
}

/** A fresh access and refresh token pair, hashed. */
export interface TokenPair {
  access_hash: string;
  access_expires_at: number;
  refresh_hash: string;
  refresh_expires_at: number;
}

export interface StoredRefresh {
  grant: StoredGrant;
  expires_at: number;
  used_at: number | null;
}

/** A host whose redirect URIs may sign in, and as which channel; channel null means denied. */
export interface HostRule {
  host: string;
  channel: string | null;
  updated_at: number;
}

/** How long what anonymous traffic leaves behind is kept before the sweeper drops it. */
export const OAUTH_RETENTION = {
  /** A registration no grant or code has used within a day was an abandoned (or hostile) sign-in. */
  unusedClientMs: 86_400_000,
  /** Revoked grants, and grants whose last token expired, stay listed this long, then go. */
  deadGrantMs: 30 * 86_400_000,
} as const;

export interface OAuthPruned {
  codes: number;
  grants: number;
  clients: number;
}

export type RedeemOutcome = 'issued' | 'reused';
export type RotateOutcome = 'issued' | 'reused';

export interface OAuthStore {
  saveClient(client: StoredClient): Promise<void>;
  getClient(clientId: string): Promise<StoredClient | undefined>;

  saveCode(code: StoredCode): Promise<void>;
  getCode(codeHash: string): Promise<StoredCode | undefined>;
  /**
   * In one transaction: marks the code used and creates the grant with its first tokens. A code
   * already used is 'reused': the grant it made is revoked (RFC 6749 §4.1.2) and nothing is issued.
   */
  redeemCode(codeHash: string, now: number, grant: NewGrant, tokens: TokenPair): Promise<RedeemOutcome>;

  getRefresh(refreshHash: string): Promise<StoredRefresh | undefined>;
  /**
   * In one transaction: spends the refresh token and issues the next pair. A token already spent is
   * 'reused': its whole grant is revoked (OAuth 2.1 §4.3.1 refresh token rotation) and nothing is issued.
   */
  rotateRefresh(refreshHash: string, now: number, tokens: TokenPair): Promise<RotateOutcome>;

  /** The live grant of an unexpired access token, or undefined. */
  verifyAccess(accessHash: string, now: number): Promise<StoredGrant | undefined>;

  listGrants(): Promise<StoredGrant[]>;
  revokeGrant(id: string, now: number, reason: string): Promise<boolean>;

  /**
   * Drops codes past their expiry (spent or not), grants revoked or without a live token for
   * OAUTH_RETENTION.deadGrantMs (their tokens with them), and clients registered more than
   * OAUTH_RETENTION.unusedClientMs ago that no grant or code refers to.
   */
  prune(now: number): Promise<OAuthPruned>;

  hostRules(): Promise<HostRule[]>;
  /** channel null records a denial, which also overrides a preset. */
  setHostRule(host: string, channel: string | null, now: number): Promise<void>;
}
