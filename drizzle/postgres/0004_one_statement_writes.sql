-- What is left of the call's lock budget becomes lock_timeout before each lock a function waits for, as the general
-- path re-sends it between statements (src/storage/postgres/tx.ts): waits met one after another share one deadline.
-- Past it, no further wait: 55P03, which the store answers STORE_BUSY.
CREATE FUNCTION stocklock_lock_budget(p_deadline timestamptz) RETURNS void LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  remaining bigint := ceil(extract(epoch FROM (p_deadline - clock_timestamp())) * 1000);
BEGIN
  IF remaining <= 0 THEN
    RAISE EXCEPTION 'the lock budget is spent' USING ERRCODE = '55P03';
  END IF;
  PERFORM set_config('lock_timeout', remaining::text, true);
END;
$$;
--> statement-breakpoint
-- add_to_cart's hot path (a new cart, a tracked product, no OAuth holder, no idempotency key) in one statement, so
-- the product row is locked for one server-side call instead of seven round trips. The store sends it in autocommit
-- (src/storage/postgres/store.ts, oneStatement). It mirrors the general path statement for statement: each
-- statement of a VOLATILE function takes a fresh READ COMMITTED snapshot, so everything read after the product lock
-- is read as the general path reads it. The decision it writes by is the one decideAddToCart makes: the store runs
-- decideAddToCart on the rows this returns, and test/storage/postgres-one-statement.test.ts runs both paths on the
-- same states and compares every row. It returns:
--   'reserved'     the cart, its line, the hold, the freed expired holds, the ledger and the counters are written;
--   'out_of_stock' nothing written (decideAddToCart names the figures from the rows returned);
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
  deadline timestamptz := clock_timestamp() + make_interval(secs => p_lock_timeout_ms / 1000.0);
BEGIN
  PERFORM stocklock_lock_budget(deadline);
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

  -- The writes, in the general path's order: the freed holds with their ledger rows, the product, the cart and its
  -- line, the reserve's ledger row, and the channel counters last, in channel order (the lock order in
  -- src/storage/postgres/transactions.ts). Separate statements measured faster here than one data-modifying CTE.
  IF cardinality(cart_ids) > 0 THEN
    UPDATE cart_lines l SET held = 0 FROM unnest(cart_ids) AS e(cart_id) WHERE l.cart_id = e.cart_id AND l.sku = p_sku;
    INSERT INTO stock_movements (at, sku, kind, quantity, on_hand_delta, reserved_delta, cart_id, order_id, channel, note)
      SELECT decided_at, p_sku, 'expire', e.held, 0, -e.held, e.cart_id, NULL, e.channel, NULL
      FROM unnest(cart_ids, helds, channels) WITH ORDINALITY AS e(cart_id, held, channel, n) ORDER BY e.n;
  END IF;
  UPDATE products p SET reserved = p.reserved - freed + p_quantity WHERE p.sku = p_sku;
  -- A new cart and its line in one statement (S.insertCartWithLine: the line's foreign key is checked at its end).
  WITH cart AS (
    INSERT INTO carts (id, channel, holder, status, currency, created_at, updated_at, expires_at)
    VALUES (p_cart_id, p_channel, '', 'open', product.currency, decided_at, decided_at, decided_at + p_ttl_ms))
  INSERT INTO cart_lines (cart_id, sku, quantity, held) VALUES (p_cart_id, p_sku, p_quantity, p_quantity);
  INSERT INTO stock_movements (at, sku, kind, quantity, on_hand_delta, reserved_delta, cart_id, order_id, channel, note)
    VALUES (decided_at, p_sku, 'reserve', p_quantity, 0, p_quantity, p_cart_id, NULL, p_channel, NULL);
  PERFORM stocklock_lock_budget(deadline);
  WITH counters AS (
    INSERT INTO channel_holds (channel, held)
      SELECT d.channel, SUM(d.delta)::bigint
      FROM (SELECT p_channel, p_quantity::bigint
            UNION ALL SELECT e.channel, -e.held::bigint FROM unnest(channels, helds) AS e(channel, held)) AS d(channel, delta)
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
--> statement-breakpoint
-- checkout's hot path (an open, live cart whose every line is tracked, active, in the cart's currency and holds its
-- whole quantity; no idempotency key) in one statement, the same way: the general path's statements in order, each
-- with a fresh snapshot. The store builds the order from decideCheckout run on the rows this returns (one per line:
-- the cart, the line, its product as locked). Returns one row with outcome 'general' and nothing written for every
-- other case (no such cart, closed, expired, empty, a line that needs holding again, ...): the general path decides.
CREATE FUNCTION stocklock_checkout_cart(
  p_cart_id text,
  p_channel text,
  p_holder text,
  p_order_id text,
  p_fixed_at bigint,
  p_offset_ms bigint,
  p_lock_timeout_ms integer
) RETURNS TABLE (
  outcome text,
  now bigint,
  cart_status text,
  cart_currency text,
  cart_created_at bigint,
  cart_updated_at bigint,
  cart_expires_at bigint,
  sku text,
  quantity integer,
  held integer,
  name text,
  description text,
  price_minor bigint,
  currency text,
  on_hand integer,
  reserved integer,
  track_stock boolean,
  active boolean
) LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
  cart carts%ROWTYPE;
  decided_at bigint;
  line_skus text[];
  line_quantities integer[];
  line_helds integer[];
  sellable integer;
  units bigint;
  line_sku text;
  deadline timestamptz := clock_timestamp() + make_interval(secs => p_lock_timeout_ms / 1000.0);
BEGIN
  PERFORM stocklock_lock_budget(deadline);
  -- The cart first, then its products in SKU order (the lock order in src/storage/postgres/transactions.ts).
  SELECT * INTO cart FROM carts c WHERE c.id = p_cart_id AND c.channel = p_channel AND c.holder = p_holder FOR UPDATE;
  outcome := 'general';
  IF NOT FOUND OR cart.status <> 'open' THEN
    RETURN NEXT;
    RETURN;
  END IF;
  -- The database's time, read once the lock is granted (databaseNow in src/storage/audit.ts).
  decided_at := COALESCE(p_fixed_at, floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint + p_offset_ms);
  IF cart.expires_at <= decided_at THEN
    RETURN NEXT;
    RETURN;
  END IF;
  SELECT COALESCE(array_agg(l.sku ORDER BY l.sku COLLATE "C"), '{}'),
         COALESCE(array_agg(l.quantity ORDER BY l.sku COLLATE "C"), '{}'),
         COALESCE(array_agg(l.held ORDER BY l.sku COLLATE "C"), '{}')
    INTO line_skus, line_quantities, line_helds
    FROM cart_lines l WHERE l.cart_id = cart.id;
  IF cardinality(line_skus) = 0 THEN
    RETURN NEXT;
    RETURN;
  END IF;
  -- One row at a time, each wait within what is left of the budget.
  FOREACH line_sku IN ARRAY line_skus LOOP
    PERFORM stocklock_lock_budget(deadline);
    PERFORM 1 FROM products p WHERE p.sku = line_sku FOR UPDATE;
  END LOOP;
  -- Lines that sell as they stand: the product sold, tracked, in the cart's currency, and the line holding it all.
  SELECT COUNT(*) INTO sellable
    FROM unnest(line_skus, line_quantities, line_helds) AS l(sku, quantity, held) JOIN products p ON p.sku = l.sku
    WHERE p.active AND p.track_stock AND p.currency = cart.currency AND l.held = l.quantity;
  IF sellable <> cardinality(line_skus) THEN
    RETURN NEXT;
    RETURN;
  END IF;
  units := (SELECT SUM(x) FROM unnest(line_quantities) AS x);

  -- What decideCheckout is given, one row per line, read before the writes.
  RETURN QUERY
    SELECT 'sold'::text, decided_at, cart.status, cart.currency, cart.created_at, cart.updated_at, cart.expires_at,
      l.sku, l.quantity, l.held, p.name, p.description, p.price_minor, p.currency, p.on_hand, p.reserved,
      p.track_stock, p.active
    FROM unnest(line_skus, line_quantities, line_helds) WITH ORDINALITY AS l(sku, quantity, held, n)
    JOIN products p ON p.sku = l.sku ORDER BY l.n;

  -- The writes, in the general path's order: the products and the lines' holds, the order and its lines, the
  -- cart, the ledger in SKU order, and the channel counter last.
  UPDATE products p SET on_hand = p.on_hand - l.quantity, reserved = p.reserved - l.quantity, updated_at = decided_at
    FROM unnest(line_skus, line_quantities) AS l(sku, quantity) WHERE p.sku = l.sku;
  UPDATE cart_lines l SET held = 0 WHERE l.cart_id = cart.id;
  INSERT INTO orders (id, cart_id, channel, total_minor, currency, created_at)
    SELECT p_order_id, cart.id, p_channel, SUM(l.quantity * p.price_minor), cart.currency, decided_at
    FROM unnest(line_skus, line_quantities) AS l(sku, quantity) JOIN products p ON p.sku = l.sku;
  INSERT INTO order_lines (order_id, sku, name, quantity, unit_price_minor)
    SELECT p_order_id, l.sku, p.name, l.quantity, p.price_minor
    FROM unnest(line_skus, line_quantities) AS l(sku, quantity) JOIN products p ON p.sku = l.sku;
  UPDATE carts c SET status = 'checked_out', updated_at = decided_at WHERE c.id = cart.id;
  INSERT INTO stock_movements (at, sku, kind, quantity, on_hand_delta, reserved_delta, cart_id, order_id, channel, note)
    SELECT decided_at, l.sku, 'sale', l.quantity, -l.quantity, -l.quantity, cart.id, p_order_id, p_channel, NULL
    FROM unnest(line_skus, line_quantities) WITH ORDINALITY AS l(sku, quantity, n) ORDER BY l.n;
  PERFORM stocklock_lock_budget(deadline);
  INSERT INTO channel_holds (channel, held) VALUES (p_channel, -units)
    ON CONFLICT (channel) DO UPDATE SET held = channel_holds.held + excluded.held;
END;
$$;
