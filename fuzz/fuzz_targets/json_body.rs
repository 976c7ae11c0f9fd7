//! The JSON body extractor on arbitrary bytes, through actix's own request machinery: never a
//! panic, a stack overflow or an answer other than the contract's 400/413/415/422; and the
//! strict parser reads exactly what serde_json reads, except that it refuses duplicate members.
#![no_main]

use actix_web::{http::header, test::TestRequest, FromRequest};
use futures_util::FutureExt;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use stockcart::{
    extract::{parse_strict, JsonBody, BODY_LIMIT},
    problem::Problem,
};

fuzz_target!(|data: &[u8]| {
    // Differential: where serde_json accepts the document, the strict parser gives the same
    // value or refuses a duplicate member; it accepts nothing serde_json refuses.
    match (serde_json::from_slice::<Value>(data), parse_strict(data)) {
        (Ok(theirs), Ok(ours)) => assert_eq!(ours, theirs),
        (Ok(_), Err(e)) => {
            assert!(e.to_string().contains("duplicate member"), "strict refused what serde_json reads: {e}")
        }
        (Err(_), Ok(v)) => panic!("strict accepted what serde_json refuses: {v}"),
        (Err(_), Err(_)) => {}
    }

    // The extractor itself, on an in-memory payload: its future is ready at once.
    let (req, mut payload) = TestRequest::post()
        .uri("/v1/cart/items")
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .set_payload(data.to_vec())
        .to_http_parts();
    let result = JsonBody::from_request(&req, &mut payload).now_or_never().expect("an in-memory body is read at once");
    match result {
        Ok(JsonBody(fields)) => {
            assert!(data.len() <= BODY_LIMIT);
            let _ = fields.int("quantity", Problem::InvalidQuantity);
            let _ = fields.opt_str("sku", Problem::InvalidSku);
        }
        Err(e) => {
            let status = e.status().as_u16();
            assert!(matches!(status, 400 | 413 | 415 | 422), "status {status}");
            if data.len() > BODY_LIMIT {
                assert_eq!(status, 413);
            }
        }
    }
});
