// The Import page's API: a catalog file (CSV or JSON) imported all or nothing, each failing line named.
import express from 'express';
import { catalogFormat, checkCatalog } from '../../catalog.js';
import { ErrorCode, isStockError } from '../../domain/errors.js';
import { apiError, CONSOLE_CHANNEL, type PageRoutes, stockErrorStatus } from '../context.js';

export const importRoutes: PageRoutes = (api, { store, logger, maxImportBytes }) => {
  api.post('/import', express.text({ type: () => true, limit: maxImportBytes }), async (req, res) => {
    const text = typeof req.body === 'string' ? req.body : '';
    if (text.trim() === '') {
      apiError(res, 400, ErrorCode.INVALID_INPUT, 'The file is empty.', { problems: ['the file is empty'] });
      return;
    }
    const { catalog, problems } = checkCatalog(text, catalogFormat(text, req.headers['content-type']));
    if (problems.length > 0) {
      apiError(
        res,
        400,
        ErrorCode.INVALID_INPUT,
        `Nothing was imported: ${problems.length} line(s) failed.`,
        { problems },
      );
      return;
    }
    try {
      const result = await store.importProducts(CONSOLE_CHANNEL, catalog.rows);
      logger.info({ ...result, rows: catalog.rows.length }, 'console imported a catalog');
      res.json({ ...result, rows: catalog.rows.length });
    } catch (error) {
      // The store names the failing row by its index; the merchant needs the line of the file.
      const row = isStockError(error) ? error.details.row : undefined;
      if (!isStockError(error) || typeof row !== 'number') throw error;
      const message = error.message.replace(/^row \d+: /, `${catalog.where[row - 1]}: `);
      apiError(res, stockErrorStatus(error.code), error.code, `Nothing was imported: ${message}`, {
        problems: [message],
      });
    }
  });
};
