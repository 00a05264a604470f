//! Saved audiences: a name and a DynamicQuery filter over contacts.

use serde_json::{json, Value};

use crate::error::FieldError;
use crate::ids::optional_id;
use crate::query::parse_filter;

/// A validated audience body.
#[derive(Debug, Clone, PartialEq)]
pub struct AudienceInput {
    pub id: Option<String>,
    pub body: Value,
}

/// Checks an audience: `{"id"?, "name", "type": "dynamic", "filter": {"datatype": "contact", "where": {..}}}`.
pub fn parse_audience(value: &Value) -> Result<AudienceInput, Vec<FieldError>> {
    let Some(object) = value.as_object() else {
        return Err(vec![FieldError::new("body", "must be a JSON object")]);
    };
    let mut errors = Vec::new();
    let id = optional_id(object, &mut errors);
    let name = match object.get("name").and_then(Value::as_str).map(str::trim) {
        Some(name) if !name.is_empty() && name.chars().count() <= 200 => name.to_string(),
        _ => {
            errors.push(FieldError::new("name", "is required, 1 to 200 characters"));
            String::new()
        }
    };
    match object.get("type") {
        None | Some(Value::Null) => {}
        Some(Value::String(t)) if t == "dynamic" => {}
        Some(_) => errors.push(FieldError::new("type", "must be \"dynamic\"")),
    }
    let filter = match object.get("filter") {
        Some(filter) => match parse_filter(filter) {
            Ok(_) => filter.clone(),
            Err(found) => {
                errors.extend(
                    found
                        .into_iter()
                        .map(|e| FieldError::new(prefixed(&e.field), e.message)),
                );
                Value::Null
            }
        },
        None => {
            errors.push(FieldError::new("filter", "is required"));
            Value::Null
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(AudienceInput {
        id,
        body: json!({ "name": name, "type": "dynamic", "filter": filter }),
    })
}

fn prefixed(field: &str) -> String {
    if field.is_empty() || field == "filter" {
        "filter".into()
    } else {
        format!("filter.{field}")
    }
}
