-- stockcart schema, version 1.
-- Invariants that an application bug must not be able to break are written here as
-- constraints, so that such a bug fails loudly instead of corrupting stock.

CREATE TABLE products (
    sku                 text COLLATE "C" PRIMARY KEY
                        CONSTRAINT products_sku_format CHECK (sku ~ '^[A-Za-z0-9._-]{1,64}$'),
    name                text NOT NULL
                        CONSTRAINT products_name_length CHECK (char_length(name) BETWEEN 1 AND 200),
    price_amount        bigint NOT NULL CONSTRAINT products_price_nonnegative CHECK (price_amount >= 0),
    price_currency      text NOT NULL CONSTRAINT products_currency_format CHECK (price_currency ~ '^[A-Z]{3}$'),
    low_stock_threshold bigint NOT NULL DEFAULT 0
                        CONSTRAINT products_threshold_nonnegative CHECK (low_stock_threshold >= 0),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- One row, bumped in the transaction of every product change. Cached carts carry the
-- revision they were assembled at, so a price change on one replica invalidates every
-- replica's cached carts on their next read (see src/cache.rs).
CREATE TABLE catalog_revision (
    singleton boolean PRIMARY KEY DEFAULT true CONSTRAINT catalog_revision_singleton CHECK (singleton),
    revision  bigint NOT NULL
);
INSERT INTO catalog_revision (singleton, revision) VALUES (true, 0);

CREATE TABLE stock_levels (
    sku      text COLLATE "C" PRIMARY KEY REFERENCES products (sku),
    on_hand  bigint NOT NULL,
    reserved bigint NOT NULL DEFAULT 0,
    version  bigint NOT NULL DEFAULT 0,
    CONSTRAINT stock_reserved_nonnegative CHECK (reserved >= 0),
    CONSTRAINT stock_on_hand_covers_reserved CHECK (on_hand >= reserved),
    CONSTRAINT stock_version_nonnegative CHECK (version >= 0)
);

-- Append-only: one row per committed change of a level, numbered by the version it produced.
CREATE TABLE stock_movements (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sku            text COLLATE "C" NOT NULL REFERENCES products (sku),
    kind           text NOT NULL
                   CONSTRAINT stock_movements_kind CHECK (kind IN ('adjustment', 'set', 'reservation', 'release', 'shipment')),
    delta_on_hand  bigint NOT NULL,
    delta_reserved bigint NOT NULL,
    on_hand_after  bigint NOT NULL,
    reserved_after bigint NOT NULL,
    version_after  bigint NOT NULL,
    reason         text,
    reference      text,
    order_id       uuid,
    at             timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT stock_movements_one_per_version UNIQUE (sku, version_after)
);

CREATE FUNCTION stock_movements_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'stock_movements is append-only';
END;
$$;
CREATE TRIGGER stock_movements_append_only
    BEFORE UPDATE OR DELETE ON stock_movements
    FOR EACH ROW EXECUTE FUNCTION stock_movements_append_only();

-- Transactional outbox: every order transition and stock change, in the transaction that
-- made it. Later consumers (webhooks, SSE, alerts) read it by increasing id.
CREATE TABLE outbox_events (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic   text NOT NULL,
    payload jsonb NOT NULL,
    at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE carts (
    id          uuid PRIMARY KEY,
    customer_id text UNIQUE,
    version     bigint NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cart_lines (
    cart_id  uuid NOT NULL REFERENCES carts (id) ON DELETE CASCADE,
    sku      text COLLATE "C" NOT NULL REFERENCES products (sku),
    quantity integer NOT NULL CONSTRAINT cart_lines_quantity CHECK (quantity BETWEEN 1 AND 999),
    position bigint GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (cart_id, sku)
);

CREATE TABLE sessions (
    id          uuid PRIMARY KEY,
    token_hash  bytea NOT NULL UNIQUE,
    cart_id     uuid NOT NULL REFERENCES carts (id),
    customer_id text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
CREATE INDEX sessions_cart_id ON sessions (cart_id);

CREATE TABLE orders (
    id                uuid PRIMARY KEY,
    session_id        uuid NOT NULL,
    customer_id       text,
    status            text NOT NULL
                      CONSTRAINT orders_status CHECK (status IN ('awaiting_payment', 'paid', 'shipped', 'cancelled', 'expired')),
    total_amount      bigint NOT NULL,
    currency          text NOT NULL,
    payment_reference text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_session ON orders (session_id, created_at DESC, id DESC);
CREATE INDEX orders_customer ON orders (customer_id, created_at DESC, id DESC) WHERE customer_id IS NOT NULL;
CREATE INDEX orders_status_created ON orders (status, created_at DESC, id DESC);
CREATE INDEX orders_created ON orders (created_at DESC, id DESC);
CREATE INDEX orders_awaiting_expiry ON orders (expires_at) WHERE status = 'awaiting_payment';

CREATE TABLE order_lines (
    order_id   uuid NOT NULL REFERENCES orders (id),
    position   integer NOT NULL,
    sku        text COLLATE "C" NOT NULL REFERENCES products (sku),
    name       text NOT NULL,
    quantity   integer NOT NULL CONSTRAINT order_lines_quantity CHECK (quantity BETWEEN 1 AND 999),
    unit_price bigint NOT NULL,
    line_total bigint NOT NULL,
    PRIMARY KEY (order_id, position),
    CONSTRAINT order_lines_one_per_sku UNIQUE (order_id, sku)
);
CREATE INDEX order_lines_sku ON order_lines (sku);

-- Checkout idempotency keys, scoped to the session that sent them. The stored answer is
-- written in the transaction that placed the order, so it can never disagree with it.
CREATE TABLE idempotency_keys (
    session_id  uuid NOT NULL,
    key         text NOT NULL,
    status_code smallint,
    response    jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
