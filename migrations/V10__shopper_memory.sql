-- Shopper memory: what each shopper viewed, and how often every product is viewed.
--
-- Recently viewed products belong to the cart, not to the session: a customer's sessions
-- share one cart, attach moves a guest session to the customer's cart (the merge moves the
-- views too), and the purge task deletes the views of carts that are gone. One shopper, one
-- list.
--
-- Recording a view is on the product read, so it is kept as cheap as a write can be: no
-- foreign keys (each would lock the cart or product row per view: a hot product's row would
-- be locked by every shopper reading it), and no index on `viewed_at`, so a repeated view
-- is a HOT update; the primary key finds a cart's at most 20 rows for sorting.
CREATE TABLE recent_views (
    cart_id   uuid NOT NULL,
    -- No foreign key to products: every view of a hot product would take a lock on its row.
    -- Only SKUs just read from products are inserted, and products are never deleted.
    sku       text COLLATE "C" NOT NULL,
    viewed_at timestamptz NOT NULL,
    PRIMARY KEY (cart_id, sku)
);

-- Views counted by every replica in memory and flushed every few seconds: a minute bucket
-- for the last hour, an hour bucket for the last days (a week's ranking then sums at most
-- 169 rows per product instead of 10,080). Old buckets are pruned by the flush.
CREATE TABLE product_views_minute (
    bucket timestamptz NOT NULL,
    sku    text COLLATE "C" NOT NULL,
    views  bigint NOT NULL,
    PRIMARY KEY (bucket, sku)
);
CREATE TABLE product_views_hour (
    bucket timestamptz NOT NULL,
    sku    text COLLATE "C" NOT NULL,
    views  bigint NOT NULL,
    PRIMARY KEY (bucket, sku)
);
