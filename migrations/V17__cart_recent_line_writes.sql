-- A cart's last few line writes, kept on its row, so that a replica whose cached copy of the
-- cart is a few versions old brings it up to date from this row instead of reading every line
-- again (issue 18). Behind a round-robin balancer a shopper's next change usually lands on the
-- replica that did not answer the last one: its copy is one or two versions behind, and the
-- lines it lacks are the one or two just written, not the dozens the cart holds.
--
-- The history covers the versions in (recent_from, recent_upto]: every line write of each of
-- those versions, newest first (a quantity of 0 is a line removed). Only cart changes
-- (`store::carts::write_changes`) keep it. Anything else that bumps the version (a checkout
-- emptying the cart, a guest cart merged in) leaves recent_upto behind the version, which says
-- the history does not reach the current cart, and the next change starts a new one.
ALTER TABLE carts
    ADD COLUMN recent_from bigint,
    ADD COLUMN recent_upto bigint,
    ADD COLUMN recent_versions bigint[] NOT NULL DEFAULT '{}',
    ADD COLUMN recent_skus text[] NOT NULL DEFAULT '{}',
    ADD COLUMN recent_quantities integer[] NOT NULL DEFAULT '{}';

-- A history whose arrays fell out of step would pair a SKU with another write's version, and a
-- copy caught up from it would be wrong with nothing to notice: refused here instead. NOT
-- VALID skips checking the existing rows, which hold the empty defaults, so adding these
-- constraints does not scan the table; every row written from now on is checked.
ALTER TABLE carts
    ADD CONSTRAINT carts_recent_aligned
        CHECK (cardinality(recent_versions) = cardinality(recent_skus)
               AND cardinality(recent_skus) = cardinality(recent_quantities)) NOT VALID,
    ADD CONSTRAINT carts_recent_range CHECK (recent_from <= recent_upto) NOT VALID;
