// The re-import rule: what a catalog row does to on-hand, so an import never silently undoes a restock or a sale.

/** How an import treats the on-hand of products that already exist. */
export interface ImportOptions {
  /** True: the file's `stock` becomes their on-hand (refused below what carts hold). False: they keep theirs. */
  setStock: boolean;
}

/** One product's on-hand around an import, so the merchant sees what changed and what the file said. */
export interface ImportStockLine {
  sku: string;
  /** On-hand before the import; null for a product the import created. */
  before: number | null;
  /** The file's `stock`; null where the row left it empty. */
  file: number | null;
  after: number;
}

/**
 * The on-hand an import row sets, or undefined to keep the product's own. A new product takes the file's
 * stock (none given: 0). An existing product's count reflects restocks and sales since the last import,
 * which the file knows nothing about, so it is kept unless the merchant asks for the file's figure.
 */
export function importedOnHand(
  before: number | null,
  file: number | undefined,
  options: ImportOptions,
): number | undefined {
  if (before === null) return file ?? 0;
  return options.setStock && file !== undefined ? file : undefined;
}
