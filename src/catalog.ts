// Reads a catalog file (JSON array or CSV) into import rows; every error names the line it is on.
import { readFileSync } from 'node:fs';
import { parse } from 'csv-parse/sync';
import { isStockError } from './domain/errors.js';
import { assertProduct, MAX_STOCK, parseMajorPrice } from './domain/rules.js';
import type { ImportRow } from './domain/types.js';

export class CatalogError extends Error {}

type RawRow = Record<string, unknown>;

const KNOWN_FIELDS = new Set([
  'sku',
  'name',
  'description',
  'price',
  'price_minor',
  'currency',
  'stock',
  'track_stock',
  'active',
]);

function toBoolean(value: unknown, field: string, where: string): boolean | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value === 'boolean') return value;
  const text = String(value).trim().toLowerCase();
  if (['true', 'yes', '1'].includes(text)) return true;
  if (['false', 'no', '0'].includes(text)) return false;
  throw new CatalogError(`${where}: ${field} must be true or false, got "${value}"`);
}

function toInteger(value: unknown, field: string, where: string, max = Number.MAX_SAFE_INTEGER): number {
  const number =
    typeof value === 'number'
      ? value
      : typeof value === 'string' && value.trim() !== ''
        ? Number(value)
        : Number.NaN;
  if (!Number.isSafeInteger(number) || number < 0 || number > max) {
    throw new CatalogError(
      `${where}: ${field} must be a whole number from 0 to ${max}, got "${String(value ?? '')}"`,
    );
  }
  return number;
}

/** Turns one raw record into an import row, or throws naming where it is. */
export function toImportRow(raw: RawRow, where: string): ImportRow {
  for (const key of Object.keys(raw)) {
    if (!KNOWN_FIELDS.has(key)) throw new CatalogError(`${where}: unknown field "${key}"`);
  }
  const text = (field: string) =>
    raw[field] === undefined || raw[field] === null ? '' : String(raw[field]).trim();
  const sku = text('sku');
  const name = text('name');
  const currency = text('currency').toUpperCase();
  if (!sku) throw new CatalogError(`${where}: sku is missing`);
  if (!name) throw new CatalogError(`${where}: name is missing`);
  if (!currency) throw new CatalogError(`${where}: currency is missing`);
  const majorPrice = () => {
    const parsed = parseMajorPrice(text('price'), currency);
    if (parsed === undefined) {
      throw new CatalogError(
        `${where}: price "${text('price')}" is not a decimal amount in ${currency} (e.g. 12.50)`,
      );
    }
    return parsed;
  };
  let priceMinor: number;
  if (text('price_minor') !== '') {
    priceMinor = toInteger(raw.price_minor, 'price_minor', where);
    // Two prices that disagree are a broken export; picking one would sell at a price nobody chose.
    if (text('price') !== '' && majorPrice() !== priceMinor) {
      throw new CatalogError(
        `${where}: price ${text('price')} and price_minor ${priceMinor} disagree (${text('price')} ${currency} is ${majorPrice()} minor units); give one of them, or make them agree`,
      );
    }
  } else if (text('price') !== '') {
    priceMinor = majorPrice();
  } else {
    throw new CatalogError(`${where}: give price (e.g. 12.50) or price_minor (e.g. 1250)`);
  }
  const description = text('description');
  const row: ImportRow = {
    sku,
    name,
    description: description === '' ? null : description,
    price_minor: priceMinor,
    currency,
    stock: text('stock') === '' ? undefined : toInteger(raw.stock, 'stock', where, MAX_STOCK),
    track_stock: toBoolean(raw.track_stock, 'track_stock', where),
    active: toBoolean(raw.active, 'active', where),
  };
  try {
    assertProduct(row);
  } catch (error) {
    if (isStockError(error)) throw new CatalogError(`${where}: ${error.message}`);
    throw error;
  }
  return row;
}

/** Line numbers (1-based) where each top-level element of a JSON array starts. */
function jsonElementLines(text: string): number[] {
  const lines: number[] = [];
  let depth = 0;
  let line = 1;
  let inString = false;
  let expectElement = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\n') line++;
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n') continue;
    if (depth === 1 && expectElement) {
      lines.push(line);
      expectElement = false;
    }
    if (c === '"') inString = true;
    else if (c === '[' || c === '{') {
      depth++;
      if (depth === 1) expectElement = true;
    } else if (c === ']' || c === '}') depth--;
    else if (c === ',' && depth === 1) expectElement = true;
  }
  return lines;
}

/** The rows of a catalog file, where each one stands in it ("line 7"), and the format it was read as. */
export interface Catalog {
  rows: ImportRow[];
  where: string[];
  /** "JSON", "CSV" or "semicolon-separated CSV": said back to the merchant, so a guess is never silent. */
  format: string;
}

const REQUIRED_COLUMNS = ['sku', 'name', 'currency'];
const EXPECTED_COLUMNS =
  'sku, name, price (12.50) or price_minor (1250), currency, stock, and optionally track_stock, description, active (see examples/demo-catalog.csv)';

const DELIMITERS = [
  { char: ',', name: 'CSV' },
  { char: ';', name: 'semicolon-separated CSV' },
  { char: '\t', name: 'tab-separated CSV' },
] as const;

/**
 * The header line decides the delimiter: the one that splits it into known column names. A spreadsheet
 * saved in a locale whose decimal mark is a comma writes semicolons; that file is read as such and said so.
 */
function csvLayout(text: string): { delimiter: string; name: string; columns: string[] } {
  const header = (text.replace(/^\uFEFF/, '').split(/\r?\n/, 1)[0] ?? '').trim();
  const split = (char: string) =>
    header.split(char).map((c) =>
      c
        .trim()
        .replace(/^"(.*)"$/, '$1')
        .toLowerCase(),
    );
  const chosen = DELIMITERS.map((d) => ({ ...d, columns: split(d.char) }))
    .filter((d) => d.columns.length > 1 && d.columns.includes('sku'))
    .sort((a, b) => b.columns.length - a.columns.length)[0] ?? { ...DELIMITERS[0], columns: split(',') };
  const unknown = chosen.columns.filter((c) => !KNOWN_FIELDS.has(c));
  if (unknown.length > 0) {
    throw new CatalogError(
      `line 1: unknown column${unknown.length > 1 ? 's' : ''} ${unknown.map((c) => `"${c}"`).join(', ')}; the header line names the columns: ${EXPECTED_COLUMNS}`,
    );
  }
  const repeated = chosen.columns.find((c, i) => chosen.columns.indexOf(c) !== i);
  if (repeated) throw new CatalogError(`line 1: column "${repeated}" appears twice`);
  const missing = REQUIRED_COLUMNS.filter((c) => !chosen.columns.includes(c));
  if (!chosen.columns.includes('price') && !chosen.columns.includes('price_minor'))
    missing.push('price or price_minor');
  if (missing.length > 0) {
    throw new CatalogError(`line 1: missing column ${missing.join(', ')}; expected ${EXPECTED_COLUMNS}`);
  }
  return { delimiter: chosen.char, name: chosen.name, columns: chosen.columns };
}

interface Entries {
  entries: { raw: RawRow; where: string }[];
  format: string;
}

function entries(text: string, format: 'json' | 'csv'): Entries {
  if (format === 'json') {
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (error) {
      throw new CatalogError(`not valid JSON: ${(error as Error).message}`);
    }
    if (!Array.isArray(data)) throw new CatalogError('a JSON catalog is an array of products');
    const lines = jsonElementLines(text);
    const items = data.map((item, index) => {
      const where = `line ${lines[index] ?? '?'} (item ${index + 1})`;
      if (typeof item !== 'object' || item === null || Array.isArray(item)) {
        throw new CatalogError(`${where}: each item must be an object`);
      }
      return { raw: item as RawRow, where };
    });
    return { entries: items, format: 'JSON' };
  }
  const layout = csvLayout(text);
  let records: { record: RawRow; info: { lines: number } }[];
  try {
    records = parse(text, {
      // Headers are matched without regard to case or surrounding spaces: "SKU", " Price ".
      columns: () => layout.columns,
      delimiter: layout.delimiter,
      skip_empty_lines: true,
      trim: true,
      bom: true,
      info: true,
    }) as typeof records;
  } catch (error) {
    throw new CatalogError(`not valid ${layout.name}: ${(error as Error).message}`);
  }
  return {
    entries: records.map(({ record, info }) => ({ raw: record, where: `line ${info.lines}` })),
    format: layout.name,
  };
}

export function parseCatalog(text: string, format: 'json' | 'csv'): Catalog {
  const parsed = entries(text, format);
  const catalog: Catalog = { rows: [], where: [], format: parsed.format };
  const seen = new Map<string, string>();
  for (const { raw, where } of parsed.entries) {
    const row = toImportRow(raw, where);
    const first = seen.get(row.sku);
    if (first !== undefined)
      throw new CatalogError(`${where}: SKU "${row.sku}" appears twice (first at ${first})`);
    seen.set(row.sku, where);
    catalog.rows.push(row);
    catalog.where.push(where);
  }
  return catalog;
}

const READ_FAILURES: Record<string, string> = {
  ENOENT: 'no such file',
  EISDIR: 'it is a directory',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
};

/** Reads and parses a catalog; every refusal is one line that names the file and what is wrong with it. */
export function readCatalog(path: string): Catalog {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as { code?: string }).code ?? '';
    throw new CatalogError(`cannot read ${path}: ${READ_FAILURES[code] ?? (error as Error).message}`);
  }
  if (text.replace(/^\uFEFF/, '').trim() === '') {
    throw new CatalogError(
      `${path} is empty; a catalog is a header line and one product per line (see examples/demo-catalog.csv)`,
    );
  }
  const catalog = parseCatalog(text, /\.csv$/i.test(path) || !/^\s*[[{]/.test(text) ? 'csv' : 'json');
  if (catalog.rows.length === 0) throw new CatalogError(`${path} lists no products`);
  return catalog;
}

/** Like parseCatalog, but names every failing line (up to `max`), for a form that shows them all. */
export function checkCatalog(
  text: string,
  format: 'json' | 'csv',
  max = 100,
): { catalog: Catalog; problems: string[] } {
  const catalog: Catalog = { rows: [], where: [], format: format === 'json' ? 'JSON' : 'CSV' };
  const problems: string[] = [];
  let parsed: { raw: RawRow; where: string }[];
  try {
    const read = entries(text, format);
    parsed = read.entries;
    catalog.format = read.format;
  } catch (error) {
    if (error instanceof CatalogError) return { catalog, problems: [error.message] };
    throw error;
  }
  const seen = new Map<string, string>();
  for (const { raw, where } of parsed) {
    if (problems.length >= max) break;
    try {
      const row = toImportRow(raw, where);
      const first = seen.get(row.sku);
      if (first !== undefined)
        throw new CatalogError(`${where}: SKU "${row.sku}" appears twice (first at ${first})`);
      seen.set(row.sku, where);
      catalog.rows.push(row);
      catalog.where.push(where);
    } catch (error) {
      if (!(error instanceof CatalogError)) throw error;
      problems.push(error.message);
    }
  }
  return { catalog, problems };
}

/** A catalog's format from its declared type, else from its first character. */
export function catalogFormat(text: string, contentType = ''): 'json' | 'csv' {
  if (/json/i.test(contentType)) return 'json';
  if (/csv/i.test(contentType)) return 'csv';
  return /^\s*[[{]/.test(text) ? 'json' : 'csv';
}
