// One process of the last-unit race: BUYERS concurrent customers each add one unit and check out through SqliteStore.
// Usage: race-worker.ts DB SKU BUYERS; starts on {"go":true} from stdin and prints {"sold": n, "refused": n}.
import { isStockError } from '../src/domain/errors.js';
import { openSqliteStore } from '../src/storage/sqlite/store.js';
import { benchStoreOptions, parentMessages, reply } from './lib.js';

const [db = '', sku = '', buyers = '1'] = process.argv.slice(2);
const store = openSqliteStore(db, benchStoreOptions('FULL'));
const ctx = { channel: `race-${process.pid}` };

async function buy(): Promise<'sold' | 'refused'> {
  try {
    const cart = await store.addToCart(ctx, { sku, quantity: 1 });
    await store.checkout(ctx, { cartId: cart.cart_id });
    return 'sold';
  } catch (error) {
    if (isStockError(error) && error.code === 'OUT_OF_STOCK') return 'refused';
    throw error;
  }
}

parentMessages(async (message) => {
  if (!message.go) return;
  const outcomes = await Promise.all(Array.from({ length: Number(buyers) }, buy));
  await store.close();
  reply({
    sold: outcomes.filter((o) => o === 'sold').length,
    refused: outcomes.filter((o) => o === 'refused').length,
  });
  process.exit(0);
});
reply({ ready: true });
