//! The live inventory dashboard at `/dashboard`: three static files embedded in the binary
//! (so every replica serves it, offline, with nothing to install), written as plain modules
//! with no library: the stock table, a fetch()-based reader of the admin event stream, and a
//! few SVG charts drawn by hand (~20 KiB in all). It talks only to this server's API.

use actix_web::{
    http::header::{self, HeaderValue},
    web, HttpRequest, HttpResponse,
};
use sha2::{Digest, Sha256};

struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset { path: "", content_type: "text/html; charset=utf-8", body: include_str!("assets/index.html") },
    Asset { path: "app.js", content_type: "text/javascript; charset=utf-8", body: include_str!("assets/app.js") },
    Asset { path: "app.css", content_type: "text/css; charset=utf-8", body: include_str!("assets/app.css") },
];

/// Only this server's own scripts, styles and API: no inline script, no other host.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; \
                   base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn etag(body: &str) -> String {
    let digest = Sha256::digest(body.as_bytes());
    format!("\"{}\"", digest[..8].iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// `GET /dashboard` and `GET /dashboard/{file}`: revalidated on every load (ETag), so a new
/// release is picked up at once and an unchanged one costs a 304.
pub async fn serve(req: HttpRequest, file: Option<web::Path<String>>) -> HttpResponse {
    let name = file.map(|f| f.into_inner()).unwrap_or_default();
    let Some(asset) = ASSETS.iter().find(|a| a.path == name) else {
        return actix_web::ResponseError::error_response(&crate::error::ApiError::new(
            crate::problem::Problem::NotFound,
            "no such file of the dashboard",
        ));
    };
    let tag = etag(asset.body);
    let fresh = req.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v == tag);
    let mut response = if fresh { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    response
        .insert_header((header::ETAG, tag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"));
    if fresh {
        return response.finish();
    }
    response.insert_header((header::CONTENT_TYPE, asset.content_type)).body(asset.body)
}
