// What every OAuth endpoint shares: the issuer and resource, the store, the clock, and loading a client.
import type { Clock } from '../domain/clock.js';
import type { Logger } from '../logger.js';
import type { OAuthStore } from '../storage/oauth.js';
import {
  type ClientMetadata,
  DEFAULT_FETCH,
  type FetchOptions,
  fetchClientMetadata,
  isClientMetadataUrl,
} from './client-metadata.js';
import { comparableResource } from './params.js';

export const MCP_PATH = '/mcp';
export const DEFAULT_ACCESS_TTL_MS = 60 * 60_000;
export const DEFAULT_REFRESH_TTL_MS = 30 * 24 * 60 * 60_000;
/** A CIMD document is fetched again when the copy we hold is older than this at authorization time. */
const CIMD_REFRESH_MS = 10 * 60_000;

export interface OAuthOptions {
  /** The public origin clients reach this server at (https://shop.example.com, or http://127.0.0.1:3000). */
  publicUrl: string;
  store: OAuthStore;
  clock: Clock;
  logger: Logger;
  /** True when this server runs on loopback: CIMD documents on loopback are then allowed (development). */
  loopback: boolean;
  /** Whether this secret is a live admin token: the consent page's merchant sign-in. */
  isAdminToken(token: string): Promise<boolean>;
  accessTtlMs?: number;
  refreshTtlMs?: number;
  /** Extra CA certificates (PEM) trusted when fetching client metadata documents. */
  clientMetadataCa?: string;
}

/** A client as the endpoints see it, from a registration or a fetched metadata document. */
export interface ResolvedClient {
  clientId: string;
  kind: 'dcr' | 'cimd';
  metadata: ClientMetadata;
  secretHash: string | null;
}

export interface OAuthContext {
  readonly issuer: string;
  /** This server's MCP URL: the only resource its tokens are good for. */
  readonly resource: string;
  /** `resource` as comparableResource() writes it. */
  readonly resourceKey: string;
  readonly resourceMetadataUrl: string;
  readonly store: OAuthStore;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly accessTtlMs: number;
  readonly refreshTtlMs: number;
  /** Cookies get Secure (and the CSRF cookie the __Host- prefix) when the issuer is https. */
  readonly secureCookies: boolean;
  readonly csrfCookie: string;
  isAdminToken(token: string): Promise<boolean>;
  /**
   * The client by id: a metadata-document client is fetched when unknown, or (with `fresh`) when the
   * copy held is old; undefined for an unknown registered client. Throws ClientMetadataError.
   */
  loadClient(clientId: string, fresh: boolean): Promise<ResolvedClient | undefined>;
}

/** Checks --public-url: an http(s) origin, nothing after it; returns it without a trailing slash. */
export function parsePublicUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(
      `--public-url "${text}" is not a URL; give the origin clients use, e.g. https://shop.example.com`,
    );
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new Error(`--public-url must be an https URL, got ${url.protocol}`);
  }
  if (url.pathname !== '/' || url.search || url.hash || url.username || url.password) {
    throw new Error(
      `--public-url must be an origin without a path (https://shop.example.com); the MCP endpoint is its ${MCP_PATH}`,
    );
  }
  return url.origin;
}

export function createContext(options: OAuthOptions): OAuthContext {
  const { store, clock } = options;
  const issuer = parsePublicUrl(options.publicUrl);
  const resource = `${issuer}${MCP_PATH}`;
  const secureCookies = issuer.startsWith('https:');
  const fetchOptions: FetchOptions = {
    ...DEFAULT_FETCH,
    allowLoopback: options.loopback,
    ...(options.clientMetadataCa ? { ca: options.clientMetadataCa } : {}),
  };

  async function loadClient(clientId: string, fresh: boolean): Promise<ResolvedClient | undefined> {
    const stored = await store.getClient(clientId);
    const now = clock.now();
    if (isClientMetadataUrl(clientId) && (!stored || (fresh && now - stored.fetched_at > CIMD_REFRESH_MS))) {
      const metadata = await fetchClientMetadata(clientId, fetchOptions);
      await store.saveClient({
        client_id: clientId,
        kind: 'cimd',
        metadata: JSON.stringify(metadata),
        secret_hash: null,
        created_at: stored?.created_at ?? now,
        fetched_at: now,
      });
      return { clientId, kind: 'cimd', metadata, secretHash: null };
    }
    if (!stored) return undefined;
    return {
      clientId,
      kind: stored.kind,
      metadata: JSON.parse(stored.metadata) as ClientMetadata,
      secretHash: stored.secret_hash,
    };
  }

  return {
    issuer,
    resource,
    resourceKey: comparableResource(resource) as string,
    resourceMetadataUrl: `${issuer}/.well-known/oauth-protected-resource${MCP_PATH}`,
    store,
    clock,
    logger: options.logger,
    accessTtlMs: options.accessTtlMs ?? DEFAULT_ACCESS_TTL_MS,
    refreshTtlMs: options.refreshTtlMs ?? DEFAULT_REFRESH_TTL_MS,
    secureCookies,
    // __Host- pins the cookie to this origin, but browsers only accept it over https.
    csrfCookie: secureCookies ? '__Host-stocklock_csrf' : 'stocklock_csrf',
    isAdminToken: options.isAdminToken,
    loadClient,
  };
}

export const clientName = (client: ResolvedClient) => client.metadata.client_name ?? client.clientId;
