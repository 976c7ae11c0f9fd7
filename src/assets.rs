//! Files embedded in the binary and served as they are: the dashboard's and the API viewer's.
//! Embedded so that every replica serves them, offline, with nothing to install or deploy
//! beside the binary.
//!
//! Each answer carries a strong ETag of the content and `Cache-Control: no-cache`: browsers
//! revalidate on every load, so a new release is picked up at once and an unchanged file costs
//! a 304 with no body (which matters for the viewer's 1.7 MB bundle).

use std::sync::LazyLock;

use actix_web::{
    http::header::{self, HeaderValue},
    HttpRequest, HttpResponse, ResponseError,
};
use sha2::{Digest, Sha256};

use crate::{error::ApiError, problem::Problem};

pub struct Asset {
    /// The file's name under its page's path; "" for the page itself.
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

/// The ETag of each asset, in order: computed once per process, since the bundle is large.
pub fn etags(assets: &[Asset]) -> Vec<String> {
    assets
        .iter()
        .map(|a| {
            let digest = Sha256::digest(a.body);
            format!("\"{}\"", digest[..8].iter().map(|b| format!("{b:02x}")).collect::<String>())
        })
        .collect()
}

/// One page's files: what both the dashboard and the API viewer serve, each under its own
/// Content-Security-Policy.
pub struct Bundle {
    pub assets: &'static [Asset],
    /// `etags(assets)`, computed on first use.
    pub etags: &'static LazyLock<Vec<String>>,
    /// The page's own policy, sent with every file of it.
    pub csp: &'static str,
    /// What a 404 says is missing ("no such file of the dashboard").
    pub missing: &'static str,
}

impl Bundle {
    /// The file `name` ("" for the page itself), 304 when the browser holds this version, or a
    /// 404 problem.
    pub fn serve(&self, req: &HttpRequest, name: &str) -> HttpResponse {
        match self.assets.iter().position(|a| a.path == name) {
            Some(i) => respond(req, &self.assets[i], &self.etags[i], self.csp),
            None => ResponseError::error_response(&ApiError::new(Problem::NotFound, self.missing)),
        }
    }
}

/// The asset, or 304 when the browser already holds this version; under `csp`, the page's own
/// policy, with framing and referrers refused.
fn respond(req: &HttpRequest, asset: &Asset, etag: &str, csp: &'static str) -> HttpResponse {
    let fresh = req.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v == etag);
    let mut response = if fresh { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    response
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp)))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"));
    if fresh {
        return response.finish();
    }
    response.insert_header((header::CONTENT_TYPE, asset.content_type)).body(asset.body)
}
