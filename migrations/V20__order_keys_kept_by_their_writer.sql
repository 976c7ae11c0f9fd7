-- Two more checks that every placed order paid for, on facts that its one writer already
-- guarantees (V18's reasoning, for the rows a checkout writes):
--
-- * idempotency_keys.order_id: the deferred foreign key of V6 ran one check per placed order at
--   commit, a lookup of the order that also takes a FOR KEY SHARE lock on its row (a WAL record
--   and a write of the row's header): 38,922 checks in a 10 s spread checkout run
--   (pg_stat_statements). A key names an order only when the checkout batch writes both, in one
--   transaction (`checkout::batch`, `store::idempotency`, `store::orders`); orders are never
--   deleted. `stockcart check-invariants` counts keys that name no order.
-- * order_lines' primary key (order_id, position): a second index entry for every line, beside
--   the unique (order_id, sku) that the report rollups look lines up by. Positions are numbered
--   0..n by the lines' one writer (`store::orders::insert_many`), which reads them back by
--   order id and sorts them; one line per SKU is the key now.
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_order_id_fkey;

ALTER TABLE order_lines DROP CONSTRAINT order_lines_pkey;
ALTER TABLE order_lines DROP CONSTRAINT order_lines_one_per_sku;
ALTER TABLE order_lines ADD CONSTRAINT order_lines_pkey PRIMARY KEY (order_id, sku);
