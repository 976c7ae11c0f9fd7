//! `/docs`: the OpenAPI document (`openapi.rs`, at `/openapi.json`) in Swagger UI, vendored
//! from npm into `assets/swagger-ui/` (pinned, re-vendored by `scripts/vendor-swagger-ui`) and
//! embedded in the binary: the page loads nothing from another host and works offline.
//! `/docs?plain` (and `<noscript>` readers, pointed there) get the same endpoints as one
//! static HTML table.
//!
//! Why Swagger UI rather than Redoc or Scalar: it is the one of the three whose free build
//! sends requests from the page (Redoc only documents), its Authorize dialog takes the two
//! bearer schemes the document declares, and it fetches nothing by default once its
//! validator badge is off (Scalar's default build loads fonts from its CDN).

use std::sync::LazyLock;

use actix_web::{web, HttpRequest, HttpResponse};

use crate::{
    assets::{self, Asset, Bundle},
    openapi,
    state::State,
};

const ASSETS: &[Asset] = &[
    Asset { path: "", content_type: "text/html; charset=utf-8", body: include_bytes!("assets/index.html") },
    Asset { path: "init.js", content_type: "text/javascript; charset=utf-8", body: include_bytes!("assets/init.js") },
    Asset {
        path: "swagger-ui-bundle.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/swagger-ui/swagger-ui-bundle.js"),
    },
    Asset {
        path: "swagger-ui.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("assets/swagger-ui/swagger-ui.css"),
    },
];

static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| assets::etags(ASSETS));

static VIEWER: Bundle = Bundle { assets: ASSETS, etags: &ETAGS, csp: CSP, missing: "no such file of the API viewer" };

/// Scripts, styles and requests of this server only: no inline script, no eval, no inline
/// style sheet. Swagger UI does write `style` attributes, but through the DOM (React sets
/// `element.style`), which a policy does not govern, so `'unsafe-inline'` is not needed (the
/// browser test fails on any violation). `img-src data:`: its style sheet draws its icons as
/// data: URIs, and the page's empty favicon is one (so the browser asks no /favicon.ico).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `GET /docs`: the viewer, or with `?plain` the static table.
pub async fn page(req: HttpRequest, state: State) -> HttpResponse {
    let plain = req.query_string().split('&').any(|pair| pair.split('=').next() == Some("plain"));
    if plain {
        // Its policy (inline styles, nothing else) comes from the edge, as for every /docs answer.
        return HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(openapi::html_for(state.settings.currency.as_str()));
    }
    file(req, None).await
}

/// `GET /docs/{file}`: the viewer's script and style sheets.
pub async fn file(req: HttpRequest, name: Option<web::Path<String>>) -> HttpResponse {
    VIEWER.serve(&req, &name.map(|n| n.into_inner()).unwrap_or_default())
}
