// Streamable HTTP on /mcp: the public face of src/transports/http/ (guard, credentials, sessions, replies, app).
export { type HttpOptions, type HttpServerHandle, serveHttp } from './http/app.js';
export type { Authenticate, BearerVerifier, Identity } from './http/credentials.js';
export { isLoopbackHost } from './http/guard.js';
