-- Recently viewed: one row per cart holding its whole list, updated in place.
--
-- Why: with one row per (cart, product) (V10), every view under a load of new products was an
-- insert (heap and primary key entry), a delete of the cart's 21st row, and a sort of the
-- cart's rows to find it, all in the product read's statement: a product read that recorded
-- a view ran at about 0.72 x an anonymous one (issue 15, target 0.95 x). A cart's list as
-- ONE row (at most 20 products, newest first, with when each was viewed) makes a view one
-- update of that row: no index entry changes (the arrays are not indexed), and with room left
-- on each page (fillfactor) it is a HOT update, which the next update of the page prunes.
--
-- `recent_views` stays readable as a view with the rows it had (one per cart and product),
-- for people and tools looking at the data; the service reads and writes the lists.
--
-- A rolling deployment: a replica still on the previous version writes `recent_views`, which
-- a view without its unique key cannot take (ON CONFLICT, DELETE), so until it is replaced
-- its recordings fail (counted; its product reads answer as always), every attach it serves
-- fails (its merge writes the old table) and so does its purge of views (retried by the new
-- replicas' purge). Its `recently-viewed` reads work and show every view. Replace them
-- promptly, or send attach to replicas already replaced.
CREATE TABLE recent_view_lists (
    cart_id   uuid PRIMARY KEY,
    -- Newest first: `viewed_at[i]` is when `skus[i]` was viewed; each product once.
    -- No foreign keys, as in V10: a view must not lock the cart's or the product's row.
    skus      text[] COLLATE "C" NOT NULL,
    viewed_at timestamptz[] NOT NULL,
    CONSTRAINT recent_view_lists_shape CHECK (
        cardinality(skus) = cardinality(viewed_at) AND cardinality(skus) BETWEEN 1 AND 20
    )
) WITH (fillfactor = 50);

-- Every existing list, its newest 20 (V10 already kept no more).
INSERT INTO recent_view_lists (cart_id, skus, viewed_at)
SELECT cart_id, array_agg(sku ORDER BY viewed_at DESC, sku), array_agg(viewed_at ORDER BY viewed_at DESC, sku)
FROM (
    SELECT cart_id, sku, viewed_at, row_number() OVER (PARTITION BY cart_id ORDER BY viewed_at DESC, sku) AS pos
    FROM recent_views
) ranked
WHERE pos <= 20
GROUP BY cart_id;

DROP TABLE recent_views;

CREATE VIEW recent_views AS
SELECT l.cart_id, v.sku, v.viewed_at
FROM recent_view_lists l, unnest(l.skus, l.viewed_at) AS v (sku, viewed_at);
