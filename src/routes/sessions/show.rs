use actix_web::HttpResponse;
use serde_json::json;

use crate::{auth::Shopper, store::timestamp};

/// `GET /v1/session`.
pub async fn handle(shopper: Shopper) -> HttpResponse {
    crate::routes::ok(&json!({ "expires_at": timestamp(&shopper.expires_at), "customer_id": shopper.customer_id }))
}
