//! HTTP routes: one file per endpoint action, grouped by resource. A handler reads top to
//! bottom: extract, parse into domain types, open a transaction, call `store`, answer.

pub mod cart;
pub mod catalog;
pub mod checkout;
pub mod events;
pub mod inventory;
pub mod ops;
pub mod orders;
pub mod reports;
pub mod sessions;

use actix_web::{http::header, web, HttpResponse};
use serde_json::Value;

/// The route table. `openapi.rs` documents the same paths.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/healthz").route(web::get().to(ops::healthz)))
        .service(resource("/readyz").route(web::get().to(ops::readyz)))
        .service(resource("/metrics").route(web::get().to(ops::metrics)))
        .service(resource("/openapi.json").route(web::get().to(ops::openapi)))
        .service(resource("/docs").route(web::get().to(ops::docs)))
        // Catalog
        .service(resource("/v1/admin/products/{sku}").route(web::put().to(catalog::put_product::handle)))
        .service(resource("/v1/products/{sku}").route(web::get().to(catalog::get_product::handle)))
        .service(resource("/v1/products").route(web::get().to(catalog::list_products::handle)))
        // Inventory
        .service(resource("/v1/admin/inventory/batch").route(web::post().to(inventory::batch::handle)))
        .service(
            resource("/v1/admin/inventory/{sku}")
                .route(web::get().to(inventory::get_level::handle))
                .route(web::put().to(inventory::set_level::handle)),
        )
        .service(resource("/v1/admin/inventory/{sku}/adjustments").route(web::post().to(inventory::adjust::handle)))
        .service(resource("/v1/admin/inventory/{sku}/movements").route(web::get().to(inventory::movements::handle)))
        .service(resource("/v1/admin/invariants").route(web::get().to(ops::invariants)))
        // Sessions
        .service(resource("/v1/sessions").route(web::post().to(sessions::create::handle)))
        .service(
            resource("/v1/session")
                .route(web::get().to(sessions::show::handle))
                .route(web::delete().to(sessions::revoke::handle)),
        )
        .service(resource("/v1/admin/sessions/attach").route(web::post().to(sessions::attach::handle)))
        // Cart
        .service(
            resource("/v1/cart").route(web::get().to(cart::get::handle)).route(web::delete().to(cart::clear::handle)),
        )
        .service(resource("/v1/cart/items").route(web::post().to(cart::add_item::handle)))
        .service(
            resource("/v1/cart/items/{sku}")
                .route(web::put().to(cart::set_item::handle))
                .route(web::delete().to(cart::remove_item::handle)),
        )
        // Checkout and orders
        .service(resource("/v1/checkout").route(web::post().to(checkout::place::handle)))
        .service(resource("/v1/orders").route(web::get().to(orders::list::handle)))
        .service(resource("/v1/orders/{id}").route(web::get().to(orders::show::handle)))
        .service(resource("/v1/orders/{id}/cancel").route(web::post().to(orders::cancel::handle)))
        .service(resource("/v1/admin/orders").route(web::get().to(orders::admin_list::handle)))
        .service(resource("/v1/admin/orders/{id}/payment").route(web::post().to(orders::pay::handle)))
        .service(resource("/v1/admin/orders/{id}/ship").route(web::post().to(orders::ship::handle)))
        // Events
        .service(resource("/v1/admin/events").route(web::get().to(events::list::handle)))
        .service(resource("/v1/admin/events/stream").route(web::get().to(events::admin_stream::handle)))
        .service(resource("/v1/stock/stream").route(web::get().to(events::public_stream::handle)))
        // Reports
        .service(resource("/v1/admin/reports/stock").route(web::get().to(reports::stock::handle)))
        .service(resource("/v1/admin/reports/movements").route(web::get().to(reports::movements::handle)))
        .service(resource("/v1/admin/reports/top").route(web::get().to(reports::top::handle)))
        .service(resource("/v1/admin/reports/reservations").route(web::get().to(reports::reservations::handle)));
}

/// A resource whose unmatched methods answer 405 (the app's default service answers 404).
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(ops::method_not_allowed))
}

pub fn json(status: actix_web::http::StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status).insert_header((header::CONTENT_TYPE, "application/json")).body(body.to_string())
}

pub fn ok(body: &Value) -> HttpResponse {
    json(actix_web::http::StatusCode::OK, body)
}
