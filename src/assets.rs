//! Files embedded in the binary and served as they are: the dashboard's and the API viewer's.
//! Embedded so that every replica serves them, offline, with nothing to install or deploy
//! beside the binary.
//!
//! Each answer carries a strong ETag of the content and `Cache-Control: no-cache`: browsers
//! revalidate on every load, so a new release is picked up at once and an unchanged file costs
//! a 304 with no body (which matters for the viewer's 1.7 MB bundle).

use actix_web::{
    http::header::{self, HeaderValue},
    HttpRequest, HttpResponse,
};
use sha2::{Digest, Sha256};

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

/// The asset named `name`, with its ETag; `None` for a name that is not one.
pub fn find<'a>(assets: &'a [Asset], etags: &'a [String], name: &str) -> Option<(&'a Asset, &'a str)> {
    let i = assets.iter().position(|a| a.path == name)?;
    Some((&assets[i], &etags[i]))
}

/// The asset, or 304 when the browser already holds this version; under `csp`, the page's own
/// policy, with framing and referrers refused.
pub fn respond(req: &HttpRequest, asset: &Asset, etag: &str, csp: &'static str) -> HttpResponse {
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
