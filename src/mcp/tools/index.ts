// Every tool, in the order hosts list them.
import type { ToolDefinition } from '../tool.js';
import { addToCart } from './add-to-cart.js';
import { cancelOrder } from './cancel-order.js';
import { checkStock } from './check-stock.js';
import { checkout } from './checkout.js';
import { confirmPayment } from './confirm-payment.js';
import { getCart } from './get-cart.js';
import { getOrder } from './get-order.js';
import { releaseCart } from './release-cart.js';
import { restock } from './restock.js';
import { searchProducts } from './search-products.js';
import { setStock } from './set-stock.js';
import { upsertProduct } from './upsert-product.js';

// biome-ignore lint/suspicious/noExplicitAny: each tool narrows its own input and output types.
export const ALL_TOOLS: ToolDefinition<any, any>[] = [
  searchProducts,
  checkStock,
  addToCart,
  getCart,
  checkout,
  getOrder,
  releaseCart,
  restock,
  setStock,
  upsertProduct,
  confirmPayment,
  cancelOrder,
];
