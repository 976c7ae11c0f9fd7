//! The event log: a replay list and two server-sent event streams (`events/` has the machinery).

pub mod admin_stream;
pub mod list;
pub mod public_stream;

use actix_web::{http::header, HttpRequest, HttpResponse};

use crate::{error::ApiError, problem::Problem};

/// Where a stream resumes: `Last-Event-ID` (what browsers send on reconnect) or `?after=`.
fn resume_from(req: &HttpRequest, after: Option<&str>) -> Result<Option<i64>, ApiError> {
    let raw = match req.headers().get("last-event-id") {
        Some(v) => Some(v.to_str().map_err(|_| ApiError::invalid_query("Last-Event-ID is not an event id"))?.trim()),
        None => after,
    };
    parse_event_id(raw)
}

/// An event id a client sends back (`?after=`, `Last-Event-ID`): absent or empty is none; else
/// a non-negative integer, or 400 `invalid_query`.
pub fn parse_event_id(raw: Option<&str>) -> Result<Option<i64>, ApiError> {
    raw.filter(|r| !r.is_empty())
        .map(|r| {
            r.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| ApiError::invalid_query("after (or Last-Event-ID) must be an event id, 0 or more"))
        })
        .transpose()
}

/// A stream's response; the caller has already admitted the client.
fn stream_response(frames: tokio::sync::mpsc::Receiver<actix_web::web::Bytes>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        // Proxies that buffer responses (nginx) would hold events back.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(crate::events::sse::body(frames))
}

/// Past the replica's stream limit: another replica (or a later try) may have room.
fn too_many_streams() -> ApiError {
    ApiError::new(Problem::StreamLimitReached, "this replica serves as many event streams as it may; try again")
        .with_header(header::RETRY_AFTER, header::HeaderValue::from_static("2"))
}

#[cfg(test)]
mod tests {
    use super::parse_event_id;

    #[test]
    fn event_ids_are_non_negative_integers() {
        assert_eq!(parse_event_id(None).unwrap(), None);
        assert_eq!(parse_event_id(Some("")).unwrap(), None);
        assert_eq!(parse_event_id(Some("0")).unwrap(), Some(0));
        assert_eq!(parse_event_id(Some("9223372036854775807")).unwrap(), Some(i64::MAX));
        for bad in ["-1", "9223372036854775808", "1.0", " 1", "\0", "x"] {
            assert!(parse_event_id(Some(bad)).is_err(), "{bad:?}");
        }
    }
}
