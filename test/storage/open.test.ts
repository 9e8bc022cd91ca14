import { describe, expect, it } from 'vitest';
import { isPostgresUrl, redactUrl } from '../../src/storage/open.js';

describe('choosing and naming the database', () => {
  it('treats postgres:// and postgresql:// URLs as PostgreSQL and everything else as a SQLite path', () => {
    expect(isPostgresUrl('postgres://u@h/db')).toBe(true);
    expect(isPostgresUrl('POSTGRESQL://u@h/db')).toBe(true);
    expect(isPostgresUrl('./stocklock.db')).toBe(false);
  });

  it('never shows a PostgreSQL password', () => {
    expect(redactUrl('postgres://shop:Sup3rSecret@db.internal:5432/stock')).toBe(
      'postgres://shop:***@db.internal:5432/stock',
    );
    expect(redactUrl('postgres://shop@db.internal/stock')).toBe('postgres://shop@db.internal/stock');
    expect(redactUrl('./stocklock.db')).toBe('./stocklock.db');
  });
});
