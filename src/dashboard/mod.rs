//! The live inventory dashboard at `/dashboard`: three static files embedded in the binary
//! (so every replica serves it, offline, with nothing to install), written as plain modules
//! with no library: the stock table, a fetch()-based reader of the admin event stream, and a
//! few SVG charts drawn by hand (~20 KiB in all). It talks only to this server's API.

use std::sync::LazyLock;

use actix_web::{web, HttpRequest, HttpResponse};

use crate::assets::{self, Asset, Bundle};

const ASSETS: &[Asset] = &[
    Asset { path: "", content_type: "text/html; charset=utf-8", body: include_bytes!("assets/index.html") },
    Asset { path: "app.js", content_type: "text/javascript; charset=utf-8", body: include_bytes!("assets/app.js") },
    Asset { path: "app.css", content_type: "text/css; charset=utf-8", body: include_bytes!("assets/app.css") },
];

static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| assets::etags(ASSETS));

static PAGE: Bundle = Bundle {
    assets: ASSETS,
    etags: &ETAGS,
    // Only this server's own scripts, styles and API: no inline script, no other host.
    csp: "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; \
          base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    missing: "no such file of the dashboard",
};

/// `GET /dashboard` and `GET /dashboard/{file}`.
pub async fn serve(req: HttpRequest, file: Option<web::Path<String>>) -> HttpResponse {
    PAGE.serve(&req, &file.map(|f| f.into_inner()).unwrap_or_default())
}
