//! Request extractors that speak the contract's error model: JSON bodies (415, 413, 400
//! `malformed_json`, 422 per field), list query parameters (400 `invalid_query`) and If-Match.

use std::{future::Future, pin::Pin};

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpMessage, HttpRequest};
use futures_util::StreamExt;
use serde_json::{Map, Value};

use crate::{
    domain::{int_value, ExpectedVersion, Invalid},
    edge::BodyPending,
    error::ApiError,
    problem::Problem,
};

pub const BODY_LIMIT: usize = 64 * 1024;
pub const BATCH_BODY_LIMIT: usize = 8 * 1024 * 1024;

/// A JSON object body of at most 64 KiB.
pub struct JsonBody(pub Fields);
/// A JSON object body of at most 8 MiB (the batch endpoint).
pub struct LargeJsonBody(pub Fields);

impl FromRequest for JsonBody {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_json(req, payload.take(), BODY_LIMIT);
        Box::pin(async move { body.await.map(JsonBody) })
    }
}

impl FromRequest for LargeJsonBody {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_json(req, payload.take(), BATCH_BODY_LIMIT);
        Box::pin(async move { body.await.map(LargeJsonBody) })
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(Problem::PayloadTooLarge, format!("request body is larger than {} KiB", limit / 1024))
}

fn read_json(req: &HttpRequest, mut payload: Payload, limit: usize) -> impl Future<Output = Result<Fields, ApiError>> {
    let is_json = req.mime_type().ok().flatten().is_some_and(|m| {
        m.type_() == "application" && (m.subtype() == "json" || m.suffix().is_some_and(|s| s == "json"))
    });
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    let req = req.clone();
    async move {
        if !is_json {
            return Err(ApiError::new(
                Problem::UnsupportedMediaType,
                "send the body as Content-Type: application/json",
            ));
        }
        if declared.is_some_and(|n| n > limit) {
            return Err(too_large(limit));
        }
        let mut bytes = web::BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
        // Left in place when the request deadline drops this future mid-body (see `edge::deadline`).
        req.extensions_mut().insert(BodyPending);
        while let Some(chunk) = payload.next().await {
            let chunk =
                chunk.map_err(|_| ApiError::new(Problem::MalformedBody, "the request body could not be read"))?;
            if bytes.len() + chunk.len() > limit {
                return Err(too_large(limit));
            }
            bytes.extend_from_slice(&chunk);
        }
        req.extensions_mut().remove::<BodyPending>();
        let value = parse_strict(&bytes)
            .map_err(|e| ApiError::new(Problem::MalformedJson, format!("the body is not valid JSON: {e}")))?;
        match value {
            Value::Object(map) => Ok(Fields(map)),
            _ => Err(ApiError::new(Problem::InvalidBody, "the body must be a JSON object")),
        }
    }
}

/// Parses JSON like `serde_json::from_slice::<Value>`, but refuses an object that names a
/// member twice: serde_json keeps the last one silently, and two parsers of one document (a
/// proxy that checks `delta`, this service that applies it) could then read different values.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    serde_json::from_slice::<StrictValue>(bytes).map(|v| v.0)
}

struct StrictValue(Value);

impl<'de> serde::Deserialize<'de> for StrictValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    // Like serde_json's own `Value`: a fraction or exponent stays a float, so `1.0` is still
    // told apart from `1` (422 `invalid_number`), and a non-finite float cannot come from JSON.
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        serde::Deserialize::deserialize(d).map(|v: StrictValue| v.0)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if fields.contains_key(&key) {
                return Err(serde::de::Error::custom(format_args!("duplicate member {key:?}")));
            }
            let StrictValue(value) = map.next_value()?;
            fields.insert(key, value);
        }
        Ok(Value::Object(fields))
    }
}

/// The members of a JSON object, read field by field so each failure names its rule.
pub struct Fields(pub Map<String, Value>);

impl Fields {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    /// An optional integer member; `code` names the rule for a wrong type or range.
    pub fn opt_int(&self, name: &str, code: Problem) -> Result<Option<i64>, Invalid> {
        self.get(name).map(|v| int_value(v, name, code)).transpose()
    }

    pub fn int(&self, name: &str, code: Problem) -> Result<i64, Invalid> {
        self.opt_int(name, code)?.ok_or_else(|| Invalid::new(code, format!("{name} is required")))
    }

    pub fn opt_str(&self, name: &str, code: Problem) -> Result<Option<&str>, Invalid> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Invalid::new(code, format!("{name} must be a string"))),
        }
    }

    pub fn str(&self, name: &str, code: Problem) -> Result<&str, Invalid> {
        self.opt_str(name, code)?.ok_or_else(|| Invalid::new(code, format!("{name} is required")))
    }
}

/// The parameters of a query string, read once; a name given twice means its last value.
pub struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    pub fn parse(req: &HttpRequest) -> Result<QueryParams, ApiError> {
        QueryParams::from_query(req.query_string())
    }

    /// The parameters of a raw query string (without its `?`).
    pub fn from_query(query: &str) -> Result<QueryParams, ApiError> {
        serde_urlencoded::from_str(query)
            .map(QueryParams)
            .map_err(|_| ApiError::invalid_query("the query string does not parse"))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// An integer parameter within `range`, or `default` when it is absent.
    pub fn int_in(&self, name: &str, range: std::ops::RangeInclusive<i64>, default: i64) -> Result<i64, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw.parse::<i64>().ok().filter(|n| range.contains(n)).ok_or_else(|| {
                ApiError::invalid_query(format!("{name} must be an integer from {} to {}", range.start(), range.end()))
            }),
        }
    }
}

/// `?limit=` and `?after=` of a list endpoint, plus any other raw parameters.
pub struct ListQuery {
    pub limit: i64,
    pub after: Option<String>,
    pub params: Vec<(String, String)>,
}

impl ListQuery {
    pub fn parse(req: &HttpRequest) -> Result<ListQuery, ApiError> {
        let all = QueryParams::parse(req)?;
        let limit = all.int_in("limit", 1..=200, 50)?;
        let after = all.get("after").map(str::to_owned);
        let params = all.0.into_iter().filter(|(k, _)| k != "limit" && k != "after").collect();
        Ok(ListQuery { limit, after, params })
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// The `If-Match` header, when sent.
pub fn if_match(req: &HttpRequest) -> Result<Option<ExpectedVersion>, ApiError> {
    match req.headers().get(header::IF_MATCH) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(ExpectedVersion::parse(s)))
            .map_err(|_| ApiError::new(Problem::InvalidHeader, "If-Match is not valid")),
    }
}

/// A page of items and the cursor of the next page.
pub fn page(items: Vec<Value>, next: Option<String>) -> Value {
    serde_json::json!({ "items": items, "next": next })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_parsing_refuses_duplicate_members_at_any_depth() {
        assert!(parse_strict(br#"{"delta": 1, "delta": -1}"#).is_err());
        assert!(parse_strict(br#"{"a": [{"sku": "A", "sku": "B"}]}"#).is_err());
        assert!(parse_strict(br#"{"a": {"b": 1}, "c": {"b": 2}}"#).is_ok());
    }

    #[test]
    fn strict_parsing_bounds_nesting_like_serde_json() {
        // Recursion is serde_json's to bound (128 levels): deeper is an error, not a stack overflow.
        let deep = |n: usize| format!("{}1{}", "{\"a\": ".repeat(n), "}".repeat(n));
        assert!(parse_strict(deep(127).as_bytes()).is_ok());
        assert!(parse_strict(deep(300).as_bytes()).is_err());
        assert!(parse_strict(format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).as_bytes()).is_err());
    }

    #[test]
    fn query_strings_keep_the_last_value_and_bound_integers() {
        let params = QueryParams::from_query("limit=9223372036854775808&after=%00&limit=7").unwrap();
        assert_eq!(params.get("after"), Some("\0"));
        assert_eq!(params.int_in("limit", 1..=200, 50).unwrap(), 7);
        assert!(QueryParams::from_query("limit=9223372036854775808").unwrap().int_in("limit", 1..=200, 50).is_err());
    }

    #[test]
    fn strict_parsing_reads_what_serde_json_reads() {
        for doc in [
            r#"{"a": 1, "b": -9223372036854775808, "c": 18446744073709551615, "d": 1.0, "e": 1e2}"#,
            r#"{"s": "\u00e9\n", "n": null, "t": true, "l": [1, [2, {}], "x"]}"#,
            r#"[1, 2.5, 100000000000000000000000000]"#,
            "\"text\"",
        ] {
            let ours = parse_strict(doc.as_bytes()).unwrap();
            let theirs: Value = serde_json::from_str(doc).unwrap();
            assert_eq!(ours, theirs, "{doc}");
            assert_eq!(ours.to_string(), theirs.to_string(), "{doc}");
        }
        for bad in ["", "{", "{\"a\": 1,}", "[1 2]", "nul", "\"\\ud800\"", "{\"a\": 1} x"] {
            assert!(parse_strict(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
