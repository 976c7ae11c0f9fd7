pub mod get_product;
pub mod list_products;
pub mod put_product;
