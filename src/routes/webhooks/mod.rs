//! Webhook endpoints: registration, their delivery log, replay and secret rotation.

pub mod create;
pub mod delete;
pub mod deliveries;
pub mod list;
pub mod replay;
pub mod rotate;
pub mod show;
pub mod update;

use serde_json::{json, Value};
use uuid::Uuid;

use crate::{
    domain::Invalid,
    error::ApiError,
    events::types::parse_filter,
    problem::Problem,
    store::{self, webhooks::Endpoint},
};

/// Longest description kept.
const MAX_DESCRIPTION: usize = 500;

/// The endpoint resource; the secret is shown only where the contract says (creation, rotation).
fn endpoint_json(e: &Endpoint) -> Value {
    json!({
        "id": e.id,
        "url": e.url,
        "types": e.types,
        "description": e.description,
        "status": e.status,
        "disabled_reason": e.disabled_reason,
        "created_at": store::timestamp(&e.created_at),
        "updated_at": store::timestamp(&e.updated_at),
    })
}

/// An id in a path that is not a UUID names no endpoint.
fn path_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| unknown())
}

fn unknown() -> ApiError {
    ApiError::new(Problem::UnknownWebhook, "no webhook endpoint has this id")
}

/// `types`: a list of event types or families, as the events list takes them.
fn parse_types(value: &Value) -> Result<Vec<String>, Invalid> {
    let items =
        value.as_array().ok_or_else(|| Invalid::new(Problem::InvalidTypes, "types must be a list of event types"))?;
    let mut types = Vec::with_capacity(items.len());
    for item in items {
        let t = item.as_str().ok_or_else(|| Invalid::new(Problem::InvalidTypes, "types must be strings"))?;
        parse_filter(Some(t), None).map_err(|e| Invalid::new(Problem::InvalidTypes, e))?;
        if !types.iter().any(|k: &String| k == t) {
            types.push(t.to_owned());
        }
    }
    Ok(types)
}

fn parse_description(raw: &str) -> Result<String, Invalid> {
    if raw.chars().count() > MAX_DESCRIPTION || raw.chars().any(|c| c.is_control() && c != '\n') {
        return Err(Invalid::new(
            Problem::InvalidDescription,
            format!("description must be at most {MAX_DESCRIPTION} characters, without control characters"),
        ));
    }
    Ok(raw.to_owned())
}
