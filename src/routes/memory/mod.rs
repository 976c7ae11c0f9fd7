//! Shopper memory: recently viewed products and popular products.

pub mod popular;
pub mod recently_viewed;
