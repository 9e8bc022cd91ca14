// Reading a POST /mcp body: size, encoding and charset, a bounded shape scanned before JSON.parse, strict JSON.
import type { IncomingMessage } from 'node:http';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';

/** Default largest body (after decompression): no tool call needs more than a few kilobytes. */
export const DEFAULT_MAX_BODY_BYTES = 64 * 1024;
/**
 * How much of a refused body is still read and thrown away before the 413, so that clients which send the whole
 * body before reading (Node's fetch, the SDK client) see the status instead of a broken pipe. Beyond it the
 * connection is closed.
 */
export const DRAIN_LIMIT_BYTES = 16 * 1024 * 1024;
/** Deepest nesting of objects and arrays a body may have; a tool call needs about six. */
export const MAX_JSON_DEPTH = 32;
/** Most object members in one body: a batch of 100 tool calls needs about a thousand. */
export const MAX_JSON_KEYS = 2_048;

/** The parsed body, the refusal to answer (400, 413, 415), or nothing to answer: the client went away. */
export type BodyResult =
  | { ok: true; value: unknown }
  | { ok: false; status: 400 | 413 | 415; code: number; message: string }
  | { ok: false; status: 0 };

/** type-is's hasBody: a request carries a body when it announces one, even an empty one. */
export function hasBody(req: IncomingMessage): boolean {
  return (
    req.headers['transfer-encoding'] !== undefined ||
    !Number.isNaN(Number.parseInt(req.headers['content-length'] ?? '', 10))
  );
}

/** Content-Type's media type (application/json, parameters aside) and its charset parameter. */
function mediaType(header: string | undefined): { type: string; charset: string | undefined } {
  const [type = '', ...params] = (header ?? '').split(';');
  let charset: string | undefined;
  for (const param of params) {
    const [name = '', value = ''] = param.split('=');
    if (name.trim().toLowerCase() === 'charset')
      charset = value
        .trim()
        .replace(/^"(.*)"$/, '$1')
        .toLowerCase();
  }
  return { type: type.trim().toLowerCase(), charset };
}

const DECODERS: Record<string, string> = {
  'utf-8': 'utf-8',
  'utf-16': 'utf-16le',
  'utf-16le': 'utf-16le',
  'utf-16be': 'utf-16be',
};

const unsupported = (): BodyResult => ({
  ok: false,
  status: 415,
  code: -32000,
  message: 'Unsupported Media Type: send UTF-8 JSON.',
});
const tooLarge = (maxBytes: number): BodyResult => ({
  ok: false,
  status: 413,
  code: -32000,
  message: `Request body too large: at most ${maxBytes} bytes.`,
});

/**
 * The parsed body of a POST, `undefined` when it has none or is not JSON (the session layer answers 415 for
 * those), or the refusal to answer. Never rejects.
 */
export async function readJsonBody(req: IncomingMessage, maxBytes: number): Promise<BodyResult> {
  const { type, charset = 'utf-8' } = mediaType(req.headers['content-type']);
  if (!hasBody(req) || type !== 'application/json') return { ok: true, value: undefined };
  const decoding = DECODERS[charset];
  const encoding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  if (!decoding || !['identity', 'gzip', 'deflate', 'br'].includes(encoding)) return unsupported();
  const announced = Number.parseInt(req.headers['content-length'] ?? '', 10);
  if (encoding === 'identity' && announced > maxBytes) {
    await drain(req, 0);
    return tooLarge(maxBytes);
  }
  const read = await collect(req, encoding, maxBytes);
  if (read.kind === 'gone') return { ok: false, status: 0 };
  if (read.kind === 'too-large') return tooLarge(maxBytes);
  if (read.kind === 'bad-encoding') {
    return {
      ok: false,
      status: 400,
      code: -32000,
      message: `Bad Request: the body is not valid ${encoding}.`,
    };
  }
  const text = new TextDecoder(decoding).decode(read.bytes);
  return parseBounded(text);
}

type Collected =
  | { kind: 'body'; bytes: Buffer }
  | { kind: 'too-large' }
  | { kind: 'bad-encoding' }
  | { kind: 'gone' };

/** Reads the (decompressed) body up to `maxBytes`; past it, the rest of the raw body is drained. */
function collect(req: IncomingMessage, encoding: string, maxBytes: number): Promise<Collected> {
  const inflater =
    encoding === 'gzip'
      ? createGunzip()
      : encoding === 'deflate'
        ? createInflate()
        : encoding === 'br'
          ? createBrotliDecompress()
          : undefined;
  const source = inflater ? req.pipe(inflater) : req;
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (result: Collected) => {
      if (done) return;
      done = true;
      source.off('data', onData);
      if (inflater) {
        req.unpipe(inflater);
        inflater.destroy();
      }
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= maxBytes) {
        chunks.push(chunk);
        return;
      }
      if (done) return;
      done = true;
      source.off('data', onData);
      if (inflater) {
        req.unpipe(inflater);
        inflater.destroy();
      }
      void drain(req, inflater ? 0 : size).then(() => resolve({ kind: 'too-large' }));
    };
    source.on('data', onData);
    source.once('end', () => finish({ kind: 'body', bytes: Buffer.concat(chunks) }));
    inflater?.once('error', () => finish({ kind: 'bad-encoding' }));
    // A client that hung up mid-body is owed nothing.
    req.once('aborted', () => finish({ kind: 'gone' }));
    req.once('error', () => finish({ kind: 'gone' }));
  });
}

/** Reads and discards the rest of the body; false when it ran past DRAIN_LIMIT_BYTES (the 413 then closes). */
function drain(req: IncomingMessage, alreadyRead: number): Promise<boolean> {
  if (req.readableEnded) return Promise.resolve(true);
  const announced = Number.parseInt(req.headers['content-length'] ?? '', 10);
  if (announced > DRAIN_LIMIT_BYTES) return Promise.resolve(false);
  return new Promise((resolve) => {
    let read = alreadyRead;
    const onData = (chunk: Buffer) => {
      read += chunk.length;
      if (read > DRAIN_LIMIT_BYTES) stop(false);
    };
    const stop = (drained: boolean) => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('close', onClose);
      if (!drained) req.pause();
      resolve(drained);
    };
    const onEnd = () => stop(true);
    const onClose = () => stop(req.readableEnded);
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('close', onClose);
    req.resume();
  });
}

/**
 * Strict JSON as body-parser reads it (empty is {}, a byte order mark is dropped, only an object or array at the
 * top), refused before parsing when nested deeper than MAX_JSON_DEPTH or holding more than MAX_JSON_KEYS members:
 * a parse and a schema walk over such a body cost far more than its size suggests.
 */
export function parseBounded(text: string): BodyResult {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  if (body.length === 0) return { ok: true, value: {} };
  const first = /^[ \t\n\r]*(.)/s.exec(body)?.[1];
  const parseError: BodyResult = {
    ok: false,
    status: 400,
    code: -32700,
    message: 'Parse error: the request body is not valid JSON.',
  };
  if (first !== '{' && first !== '[') return parseError;
  const shape = scanShape(body);
  if (shape) return { ok: false, status: 400, code: -32600, message: `Invalid Request: ${shape}` };
  try {
    return { ok: true, value: JSON.parse(body) };
  } catch {
    return parseError;
  }
}

/** One pass over the text outside strings: what is wrong with its shape, or undefined. */
function scanShape(text: string): string | undefined {
  let depth = 0;
  let keys = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i += 1; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      depth += 1;
      if (depth > MAX_JSON_DEPTH) return `the body is nested deeper than ${MAX_JSON_DEPTH} levels.`;
    } else if (c === 0x7d || c === 0x5d) depth -= 1;
    else if (c === 0x3a) {
      keys += 1;
      if (keys > MAX_JSON_KEYS) return `the body has more than ${MAX_JSON_KEYS} object members.`;
    }
  }
  return undefined;
}
