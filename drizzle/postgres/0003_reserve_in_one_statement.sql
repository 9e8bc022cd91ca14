-- add_to_cart's hot path (a new cart, a tracked product, no OAuth holder, no idempotency key) in one statement, so
-- the product row is locked for one server-side call instead of seven round trips. The store sends it in autocommit
-- (src/storage/postgres/store.ts, reserveInOneStatement). It mirrors the general path statement for statement: each
-- statement of a VOLATILE function takes a fresh READ COMMITTED snapshot, so everything read after the product lock
-- is read as the general path reads it. The decision it writes by is the one decideAddToCart makes: the store runs
-- decideAddToCart on the rows this returns, and test/storage/postgres-one-statement.test.ts runs both paths on the
-- same states and compares every row. It returns:
--   'reserved'     the cart, its line, the hold, the freed expired holds, the ledger and the counters are written;
--   'out_of_stock' nothing written (available says how many were free);
--   'general'      nothing written: a case the general path decides (no such product, inactive, untracked).
-- A channel counter above p_max_channel_held raises SQLSTATE SL001, which rolls everything back: the general path
-- then decides the cap exactly (expired holds elsewhere no longer count).
CREATE FUNCTION stocklock_reserve_new_cart(
  p_sku text,
  p_quantity integer,
  p_cart_id text,
  p_channel text,
  p_ttl_ms bigint,
  p_max_channel_held bigint,
  p_fixed_at bigint,
  p_offset_ms bigint,
  p_lock_timeout_ms integer
) RETURNS TABLE (
  outcome text,
  now bigint,
  sku text,
  name text,
  description text,
  price_minor bigint,
  currency text,
  on_hand integer,
  reserved integer,
  track_stock boolean,
  active boolean,
  expired_cart_ids text[],
  expired_held integer[],
  expired_channels text[]
) LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
  product products%ROWTYPE;
  decided_at bigint;
  cart_ids text[];
  helds integer[];
  channels text[];
  freed bigint;
  counter bigint;
BEGIN
  -- The call's remaining lock budget, for this transaction only (the statement is its own transaction).
  PERFORM set_config('lock_timeout', p_lock_timeout_ms::text, true);
  SELECT * INTO product FROM products p WHERE p.sku = p_sku FOR UPDATE;
  outcome := 'general';
  sku := p_sku;
  IF NOT FOUND OR NOT product.active OR NOT product.track_stock THEN
    RETURN NEXT;
    RETURN;
  END IF;
  -- The database's time, read once the lock is granted (databaseNow in src/storage/audit.ts).
  decided_at := COALESCE(p_fixed_at, floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint + p_offset_ms);

  -- Other carts' expired holds of this SKU (S.expiredHolds): a cart someone else has locked is skipped. The scan
  -- starts from the expiry index (open carts past their expiry: few, the sweeper closes them), not from the SKU's
  -- holds, which on a hot SKU are every live cart's.
  SELECT COALESCE(array_agg(h.cart_id ORDER BY h.expires_at, h.cart_id COLLATE "C"), '{}'),
         COALESCE(array_agg(h.held ORDER BY h.expires_at, h.cart_id COLLATE "C"), '{}'),
         COALESCE(array_agg(h.channel ORDER BY h.expires_at, h.cart_id COLLATE "C"), '{}'),
         COALESCE(SUM(h.held), 0)
    INTO cart_ids, helds, channels, freed
    FROM (SELECT l.cart_id, l.held, c.channel, c.expires_at FROM carts c JOIN cart_lines l ON l.cart_id = c.id
          WHERE c.id = ANY (ARRAY(SELECT o.id FROM carts o WHERE o.status = 'open' AND o.expires_at <= decided_at))
            AND l.sku = p_sku AND c.status = 'open' AND c.expires_at <= decided_at AND l.held > 0
          FOR UPDATE OF c SKIP LOCKED) h;

  -- What decideAddToCart is given: the product as locked and the holds it may free.
  now := decided_at;
  name := product.name;
  description := product.description;
  price_minor := product.price_minor;
  currency := product.currency;
  on_hand := product.on_hand;
  reserved := product.reserved;
  track_stock := product.track_stock;
  active := product.active;
  expired_cart_ids := cart_ids;
  expired_held := helds;
  expired_channels := channels;
  IF product.on_hand - product.reserved + freed < p_quantity THEN
    outcome := 'out_of_stock';
    RETURN NEXT;
    RETURN;
  END IF;

  -- Every write in one statement, so the lock is held for as few statements as can be: the freed holds, the
  -- product, the cart and its line (its foreign keys are checked at the statement's end), the ledger (expired
  -- holds first, then the reserve, as the general path writes them) and the channel counters in channel order
  -- (the lock order in src/storage/postgres/transactions.ts).
  WITH freed_holds AS (
      UPDATE cart_lines l SET held = 0 FROM unnest(cart_ids) AS e(cart_id)
      WHERE l.cart_id = e.cart_id AND l.sku = p_sku),
    stock AS (
      UPDATE products p SET reserved = p.reserved - freed + p_quantity WHERE p.sku = p_sku),
    cart AS (
      INSERT INTO carts (id, channel, holder, status, currency, created_at, updated_at, expires_at)
      VALUES (p_cart_id, p_channel, '', 'open', product.currency, decided_at, decided_at, decided_at + p_ttl_ms)),
    line AS (
      INSERT INTO cart_lines (cart_id, sku, quantity, held) VALUES (p_cart_id, p_sku, p_quantity, p_quantity)),
    ledger AS (
      INSERT INTO stock_movements
        (at, sku, kind, quantity, on_hand_delta, reserved_delta, cart_id, order_id, channel, note)
      SELECT decided_at, p_sku, m.kind, m.quantity, 0, m.reserved_delta, m.cart_id, NULL, m.channel, NULL
      FROM (SELECT 'expire' AS kind, e.held AS quantity, -e.held AS reserved_delta, e.cart_id, e.channel, e.n
            FROM unnest(cart_ids, helds, channels) WITH ORDINALITY AS e(cart_id, held, channel, n)
            UNION ALL SELECT 'reserve', p_quantity, p_quantity, p_cart_id, p_channel, 2147483647) AS m
      ORDER BY m.n),
    counters AS (
      INSERT INTO channel_holds (channel, held)
      SELECT d.channel, SUM(d.delta)::bigint
      FROM (SELECT p_channel, p_quantity::bigint
            UNION ALL SELECT e.channel, -e.held::bigint FROM unnest(channels, helds) AS e(channel, held))
        AS d(channel, delta)
      GROUP BY d.channel ORDER BY d.channel COLLATE "C"
      ON CONFLICT (channel) DO UPDATE SET held = channel_holds.held + excluded.held
      RETURNING channel_holds.channel, channel_holds.held)
  SELECT c.held INTO counter FROM counters c WHERE c.channel = p_channel;
  IF counter > p_max_channel_held THEN
    RAISE EXCEPTION 'channel % may be over its cap', p_channel USING ERRCODE = 'SL001';
  END IF;
  outcome := 'reserved';
  RETURN NEXT;
END;
$$;
