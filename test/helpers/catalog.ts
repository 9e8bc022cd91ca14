// Every catalog the tests import, in one place. Each is shaped for the suites named in its comment,
// whose figures depend on its SKUs and stock, so change a row only together with them.
import type { ImportRow } from '../../src/domain/types.js';

/** The store contract (test/storage/contract.ts) and the suites built on it: a last unit, an untracked
 * e-book, a product in dollars and a retired one. */
export const CONTRACT_CATALOG: ImportRow[] = [
  {
    sku: 'TSHIRT-M',
    name: 'Cotton T-shirt, size M',
    description: 'Organic crew neck',
    price_minor: 1999,
    currency: 'EUR',
    stock: 10,
  },
  {
    sku: 'MUG',
    name: 'Coffee mug',
    description: 'Stoneware, 350 ml',
    price_minor: 1250,
    currency: 'EUR',
    stock: 5,
  },
  { sku: 'LAST-ONE', name: 'Signed print', price_minor: 5000, currency: 'EUR', stock: 1 },
  {
    sku: 'EBOOK',
    name: 'Brewing guide (PDF)',
    price_minor: 999,
    currency: 'EUR',
    stock: 0,
    track_stock: false,
  },
  { sku: 'CAP-US', name: 'Baseball cap', price_minor: 1500, currency: 'USD', stock: 3 },
  { sku: 'RETIRED', name: 'Old poster', price_minor: 800, currency: 'EUR', stock: 4, active: false },
];

/** A small shop for SQLite stores (sqliteStore), MCP servers over them and the console's queries:
 * one limited jacket, an untracked e-book, a product in dollars. */
export const SHOP_CATALOG: ImportRow[] = [
  { sku: 'TEE-BLK-M', name: 'T-shirt black M', price_minor: 2400, currency: 'EUR', stock: 10 },
  { sku: 'JACKET-LTD', name: 'Limited jacket', price_minor: 14900, currency: 'EUR', stock: 1 },
  { sku: 'MUG-WHT', name: 'Enamel mug', price_minor: 1450, currency: 'EUR', stock: 5 },
  {
    sku: 'EBOOK',
    name: 'Care guide e-book',
    price_minor: 499,
    currency: 'EUR',
    stock: 0,
    track_stock: false,
  },
  { sku: 'USD-CAP', name: 'Cap priced in dollars', price_minor: 2000, currency: 'USD', stock: 5 },
];

/** The HTTP transports' shop: deep stock so many clients rarely run out, and a last five to fight over. */
export const HTTP_CATALOG: ImportRow[] = [
  {
    sku: 'TEE-BLK-M',
    name: 'Organic cotton T-shirt, black, M',
    price_minor: 2400,
    currency: 'EUR',
    stock: 500,
  },
  { sku: 'MUG-WHT', name: 'Enamel camp mug, white', price_minor: 1450, currency: 'EUR', stock: 60 },
  { sku: 'LAST-FIVE', name: 'Limited print, last five', price_minor: 9900, currency: 'EUR', stock: 5 },
  {
    sku: 'GIFT-25',
    name: 'Digital gift card',
    price_minor: 2500,
    currency: 'EUR',
    stock: 0,
    track_stock: false,
  },
];

/** The reference-model test: small stocks so every refusal is reachable in a few steps. */
export const MODEL_CATALOG: ImportRow[] = [
  { sku: 'EBOOK', name: 'Untracked e-book', price_minor: 500, currency: 'EUR', stock: 0, track_stock: false },
  { sku: 'ROOMY', name: 'Plenty of these', price_minor: 1000, currency: 'EUR', stock: 40 },
  { sku: 'SMALL', name: 'A few of these', price_minor: 250, currency: 'EUR', stock: 4 },
  { sku: 'TINY', name: 'The last one', price_minor: 9900, currency: 'EUR', stock: 1 },
  { sku: 'USD-CAP', name: 'Priced in dollars', price_minor: 2000, currency: 'USD', stock: 3 },
];

/** The PostgreSQL one-statement reserve against the general path: every kind of row a reserve meets. */
export const ONE_STATEMENT_CATALOG: ImportRow[] = [
  { sku: 'A', name: 'Few', price_minor: 1000, currency: 'EUR', stock: 3 },
  { sku: 'B', name: 'More', price_minor: 250, currency: 'EUR', stock: 8 },
  { sku: 'C', name: 'Untracked', price_minor: 99, currency: 'EUR', stock: 0, track_stock: false },
  { sku: 'D', name: 'Retired', price_minor: 500, currency: 'EUR', stock: 4, active: false },
  { sku: 'E', name: 'None left', price_minor: 700, currency: 'EUR', stock: 0 },
  { sku: 'U', name: 'Dollars', price_minor: 1500, currency: 'USD', stock: 5 },
];

/** Scarce stock for the clock-skew interleavings. */
export const SCARCE_CATALOG: ImportRow[] = [
  { sku: 'A', name: 'Product A', price_minor: 100, currency: 'EUR', stock: 3 },
  { sku: 'B', name: 'Product B', price_minor: 200, currency: 'EUR', stock: 6 },
  { sku: 'C', name: 'Product C', price_minor: 300, currency: 'EUR', stock: 8 },
  { sku: 'E', name: 'E-book', price_minor: 50, currency: 'EUR', stock: 0, track_stock: false },
];
