//! Hetzner's error envelope `{"error":{"code","message","details"}}` and the HTTP status that
//! goes with each code (the status table of Hetzner's API reference). Clients act on `code`.

use serde_json::{Value, json};

/// An error answer of the API.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub details: Value,
}

/// The HTTP status Hetzner sends with `code`.
pub fn status_of(code: &str) -> u16 {
    match code {
        "json_error" => 400,
        "unauthorized" | "token_readonly" => 401,
        "forbidden" | "maintenance" | "resource_limit_exceeded" => 403,
        "not_found" => 404,
        "method_not_allowed" => 405,
        "uniqueness_error" | "conflict" => 409,
        "deprecated_api_endpoint" => 410,
        "resource_unavailable" | "primary_ip_version_mismatch" => 412,
        "invalid_input"
        | "service_error"
        | "unsupported_error"
        | "server_not_stopped"
        | "invalid_server_type"
        | "placement_error"
        | "primary_ip_assigned"
        | "primary_ip_datacenter_mismatch"
        | "must_be_unassigned" => 422,
        "locked" | "protected" => 423,
        "rate_limit_exceeded" => 429,
        "unavailable" => 503,
        "timeout" => 504,
        _ => 500,
    }
}

impl ApiError {
    pub fn new(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: status_of(code),
            code,
            message: message.into(),
            details: Value::Null,
        }
    }

    /// `invalid_input` naming one field, the way Hetzner words it:
    /// "invalid input in field 'name'" with `details.fields[{name, messages}]`.
    pub fn invalid_field(field: &str, messages: &[&str]) -> ApiError {
        ApiError {
            status: 422,
            code: "invalid_input",
            message: format!("invalid input in field '{field}'"),
            details: json!({"fields": [{"name": field, "messages": messages}]}),
        }
    }

    /// `invalid_input` with a message of its own and the field it is about.
    pub fn invalid_input(field: &str, message: &str) -> ApiError {
        ApiError {
            status: 422,
            code: "invalid_input",
            message: message.to_string(),
            details: json!({"fields": [{"name": field, "messages": [message]}]}),
        }
    }

    pub fn not_found(what: &str) -> ApiError {
        ApiError::new("not_found", format!("{what} not found"))
    }

    pub fn uniqueness(field: &str, message: &str) -> ApiError {
        ApiError {
            details: json!({"fields": [{"name": field}]}),
            ..ApiError::new("uniqueness_error", message)
        }
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new("unauthorized", "unable to authenticate")
    }

    pub fn locked() -> ApiError {
        ApiError::new("locked", "Item is locked (Another action is running)")
    }

    pub fn body(&self) -> Value {
        json!({"error": {"code": self.code, "message": self.message, "details": self.details}})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_hetzners_table() {
        assert_eq!(status_of("invalid_input"), 422);
        assert_eq!(status_of("unauthorized"), 401);
        assert_eq!(status_of("locked"), 423);
        assert_eq!(status_of("uniqueness_error"), 409);
        assert_eq!(status_of("deprecated_api_endpoint"), 410);
        assert_eq!(status_of("something_new"), 500);
    }

    #[test]
    fn invalid_input_names_its_field() {
        let e = ApiError::invalid_field("labels", &["invalid label value"]);
        assert_eq!(e.body()["error"]["details"]["fields"][0]["name"], "labels");
        assert_eq!(e.body()["error"]["code"], "invalid_input");
    }
}
