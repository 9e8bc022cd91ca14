-- checkout's hot path learns the channel's checkout mode. The function now reads it itself, after its locks, as the
-- general path reads it inside its transaction (src/storage/workflow/orders.ts, checkoutModeFor): the channel's own
-- setting, else 'payment' when an OAuth host signs in as the channel (the merchant's host map, then the preset hosts
-- the map leaves, passed in by the store so the presets stay written once, in src/domain/channels.ts), else 'direct'.
-- So a direct checkout is still one statement, with no reads before it, and a payment checkout is one too.
-- The rows it writes are the ones decideOrderCheckout writes, column for column:
--   'direct'  the sale as before, and the order now carries its holder, status 'paid' and paid_at;
--   'payment' no stock moves: each line's hold passes from the cart to the order (order_lines.held), the order
--             awaits payment until now + p_payment_window_ms; reserved and the channel's counter stay as they are.
-- test/storage/postgres-one-statement.test.ts runs the same workloads through this and the general path and
-- compares every answer and every row.
DROP FUNCTION stocklock_checkout_cart(text, text, text, text, bigint, bigint, integer);
--> statement-breakpoint
CREATE FUNCTION stocklock_checkout_cart(
  p_cart_id text,
  p_channel text,
  p_holder text,
  p_order_id text,
  p_fixed_at bigint,
  p_offset_ms bigint,
  p_lock_timeout_ms integer,
  p_payment_window_ms bigint,
  p_preset_hosts text[],
  p_preset_channels text[]
) RETURNS TABLE (
  outcome text,
  now bigint,
  checkout_mode text,
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
  mode text;
  line_skus text[];
  line_quantities integer[];
  line_helds integer[];
  sellable integer;
  units bigint;
  line_sku text;
  deadline timestamptz := clock_timestamp() + make_interval(secs => p_lock_timeout_ms / 1000.0);
BEGIN
  PERFORM stocklock_lock_budget(deadline);
  -- The cart first, then its products in SKU order (the lock order in src/storage/postgres/engine.ts).
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

  -- The channel's checkout mode, read under the cart's and products' locks as the general path reads it.
  SELECT ch.checkout INTO mode FROM channels ch WHERE ch.channel = p_channel;
  IF mode IS NULL THEN
    mode := CASE WHEN EXISTS (SELECT 1 FROM oauth_hosts h WHERE h.channel = p_channel)
                   OR EXISTS (SELECT 1 FROM unnest(p_preset_hosts, p_preset_channels) AS ph(host, channel)
                              WHERE ph.channel = p_channel
                                AND NOT EXISTS (SELECT 1 FROM oauth_hosts h WHERE h.host = ph.host))
                 THEN 'payment' ELSE 'direct' END;
  END IF;

  -- What decideOrderCheckout is given, one row per line, read before the writes.
  RETURN QUERY
    SELECT 'sold'::text, decided_at, mode, cart.status, cart.currency, cart.created_at, cart.updated_at,
      cart.expires_at, l.sku, l.quantity, l.held, p.name, p.description, p.price_minor, p.currency, p.on_hand,
      p.reserved, p.track_stock, p.active
    FROM unnest(line_skus, line_quantities, line_helds) WITH ORDINALITY AS l(sku, quantity, held, n)
    JOIN products p ON p.sku = l.sku ORDER BY l.n;

  IF mode = 'payment' THEN
    -- The holds move from the cart's lines to the order's; nothing is sold, nothing else changes.
    UPDATE cart_lines l SET held = 0 WHERE l.cart_id = cart.id;
    INSERT INTO orders (id, cart_id, channel, holder, status, total_minor, currency, created_at, pay_by, paid_at)
      SELECT p_order_id, cart.id, p_channel, p_holder, 'awaiting_payment', SUM(l.quantity * p.price_minor),
        cart.currency, decided_at, decided_at + p_payment_window_ms, NULL
      FROM unnest(line_skus, line_quantities) AS l(sku, quantity) JOIN products p ON p.sku = l.sku;
    INSERT INTO order_lines (order_id, sku, name, quantity, unit_price_minor, held)
      SELECT p_order_id, l.sku, p.name, l.quantity, p.price_minor, l.quantity
      FROM unnest(line_skus, line_quantities) AS l(sku, quantity) JOIN products p ON p.sku = l.sku;
    UPDATE carts c SET status = 'checked_out', updated_at = decided_at WHERE c.id = cart.id;
    RETURN;
  END IF;

  -- The sale, in the general path's order: the products and the lines' holds, the order and its lines, the
  -- cart, the ledger in SKU order, and the channel counter last.
  UPDATE products p SET on_hand = p.on_hand - l.quantity, reserved = p.reserved - l.quantity, updated_at = decided_at
    FROM unnest(line_skus, line_quantities) AS l(sku, quantity) WHERE p.sku = l.sku;
  UPDATE cart_lines l SET held = 0 WHERE l.cart_id = cart.id;
  INSERT INTO orders (id, cart_id, channel, holder, status, total_minor, currency, created_at, pay_by, paid_at)
    SELECT p_order_id, cart.id, p_channel, p_holder, 'paid', SUM(l.quantity * p.price_minor), cart.currency,
      decided_at, NULL, decided_at
    FROM unnest(line_skus, line_quantities) AS l(sku, quantity) JOIN products p ON p.sku = l.sku;
  INSERT INTO order_lines (order_id, sku, name, quantity, unit_price_minor, held)
    SELECT p_order_id, l.sku, p.name, l.quantity, p.price_minor, 0
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
