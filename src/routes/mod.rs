//! HTTP routes: one file per endpoint action, grouped by resource. A handler reads top to
//! bottom: extract, parse into domain types, open a transaction, call `store`, answer.

pub mod cart;
pub mod catalog;
pub mod checkout;
pub mod events;
pub mod inventory;
pub mod memory;
pub mod ops;
pub mod orders;
pub mod reports;
pub mod sessions;
pub mod webhooks;

use actix_web::{
    dev::{ServiceFactory, ServiceRequest, ServiceResponse},
    http::header,
    middleware::from_fn,
    web, HttpResponse,
};
use serde_json::Value;

/// The route table. `openapi.rs` documents the same paths.
///
/// actix tries the resources in this order and runs a regex for every pattern with a `{param}`
/// it passes, so the shopper's paths, which carry nearly all the traffic, come first: a cart
/// read passed six patterns' regexes on its way down before (1.4 % of the machine's time in a
/// get-cart run, more than any other function of the replica).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/healthz").route(web::get().to(ops::healthz)))
        .service(resource("/readyz").route(web::get().to(ops::readyz)))
        .service(resource("/metrics").route(web::get().to(ops::metrics)))
        .service(resource("/openapi.json").route(web::get().to(ops::openapi)))
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
        // Events
        .service(resource("/v1/admin/events").route(web::get().to(events::list::handle)))
        .service(resource("/v1/admin/events/stream").route(web::get().to(events::admin_stream::handle)))
        .service(resource("/v1/stock/stream").route(web::get().to(events::public_stream::handle)))
        // The API viewer (static files of its own, and the plain table at /docs?plain)
        .service(resource("/docs").route(web::get().to(crate::docs::page)))
        .service(resource("/docs/{file}").route(web::get().to(crate::docs::file)))
        // The live dashboard (static files; it signs in with the admin token in the browser)
        .service(resource("/dashboard").route(web::get().to(crate::dashboard::serve)))
        .service(resource("/dashboard/{file}").route(web::get().to(crate::dashboard::serve)))
        // Shopper memory
        .service(resource("/v1/session/recently-viewed").route(web::get().to(memory::recently_viewed::handle)))
        .service(resource("/v1/popular-products").route(web::get().to(memory::popular::handle)))
        // Webhooks
        .service(
            resource("/v1/admin/webhooks")
                .route(web::post().to(webhooks::create::handle))
                .route(web::get().to(webhooks::list::handle)),
        )
        .service(
            resource("/v1/admin/webhooks/{id}")
                .route(web::get().to(webhooks::show::handle))
                .route(web::patch().to(webhooks::update::handle))
                .route(web::delete().to(webhooks::delete::handle)),
        )
        .service(resource("/v1/admin/webhooks/{id}/rotate-secret").route(web::post().to(webhooks::rotate::handle)))
        .service(resource("/v1/admin/webhooks/{id}/deliveries").route(web::get().to(webhooks::deliveries::handle)))
        .service(resource("/v1/admin/webhooks/{id}/replay").route(web::post().to(webhooks::replay::handle)))
        // Reports
        .service(resource("/v1/admin/reports/stock").route(web::get().to(reports::stock::handle)))
        .service(resource("/v1/admin/reports/movements").route(web::get().to(reports::movements::handle)))
        .service(resource("/v1/admin/reports/top").route(web::get().to(reports::top::handle)))
        .service(resource("/v1/admin/reports/reservations").route(web::get().to(reports::reservations::handle)));
}

/// A resource whose unmatched methods answer 405 (the app's default service answers 404),
/// bounded by the request deadline (`edge::deadline`; per resource, because the deadline keeps
/// a handle on the request, which only routing that is already done tolerates).
fn resource(
    path: &str,
) -> actix_web::Resource<
    impl ServiceFactory<ServiceRequest, Config = (), Response = ServiceResponse, Error = actix_web::Error, InitError = ()>,
> {
    web::resource(path).default_service(web::to(ops::method_not_allowed)).wrap(from_fn(crate::edge::deadline))
}

pub fn json(status: actix_web::http::StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status).insert_header((header::CONTENT_TYPE, "application/json")).body(body.to_string())
}

pub fn ok(body: &Value) -> HttpResponse {
    json(actix_web::http::StatusCode::OK, body)
}
