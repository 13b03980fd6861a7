//! Failures, as the API server reports them (`metav1.Status`) and as the Rust API returns
//! them ([`SimError`]).

use serde_json::{Value, json};

/// An error from the simulated API server's Rust API.
///
/// Failures that the HTTP API would report as a `Status` (not found, already exists,
/// conflict, invalid object...) are [`SimError::Api`], with the same code, reason and
/// message the HTTP response carries.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The operation failed the way the HTTP API would fail it.
    #[error("{message} ({code} {reason})")]
    Api {
        /// The HTTP status code (404, 409, 422...).
        code: u16,
        /// The machine-readable reason (`NotFound`, `AlreadyExists`, `Conflict`...).
        reason: String,
        /// The human-readable message.
        message: String,
    },
    /// The resource (group, version, plural) is not registered with the server.
    #[error("resource {api_version}/{plural} is not registered with the simulated API server")]
    UnknownResource {
        /// The resource's apiVersion (`v1`, `networking.k8s.io/v1`...).
        api_version: String,
        /// The resource's plural name.
        plural: String,
    },
    /// A fault definition is invalid (for example a status code that is not an error).
    #[error("invalid fault: {0}")]
    InvalidFault(String),
    /// An object could not be converted to or from JSON.
    #[error("object (de)serialisation failed: {0}")]
    Serde(#[from] serde_json::Error),
    /// The listening socket could not be bound.
    #[error("could not bind the API server socket: {0}")]
    Io(#[from] std::io::Error),
    /// The `kube::Client` for the server could not be built.
    #[error("could not build a kube client: {0}")]
    Kube(#[from] kube::Error),
    /// The server's URL could not be parsed (should not happen for a bound address).
    #[error("invalid server url: {0}")]
    Url(String),
}

impl SimError {
    /// The HTTP status code the API would answer with, for [`SimError::Api`].
    pub fn code(&self) -> Option<u16> {
        match self {
            SimError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether this is a 404 NotFound.
    pub fn is_not_found(&self) -> bool {
        self.code() == Some(404)
    }

    /// Whether this is a 409 (AlreadyExists or Conflict).
    pub fn is_conflict(&self) -> bool {
        self.code() == Some(409)
    }
}

impl From<ApiError> for SimError {
    fn from(e: ApiError) -> Self {
        SimError::Api {
            code: e.code,
            reason: e.reason.to_string(),
            message: e.message,
        }
    }
}

/// The details block of a Status (`details.name`, `details.group`, `details.kind`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Details {
    pub(crate) name: String,
    pub(crate) group: String,
    pub(crate) kind: String,
}

/// A failure the HTTP layer renders as a `metav1.Status`.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub(crate) code: u16,
    pub(crate) reason: &'static str,
    pub(crate) message: String,
    pub(crate) details: Option<Box<Details>>,
    pub(crate) retry_after: Option<u32>,
}

/// The reason a real API server gives for a status code with no more specific reason.
pub(crate) fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Expired",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "",
    }
}

impl ApiError {
    pub(crate) fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    pub(crate) fn with_details(mut self, details: Details) -> Self {
        self.details = Some(Box::new(details));
        self
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub(crate) fn invalid(message: impl Into<String>, details: Details) -> Self {
        Self::new(422, "Invalid", message).with_details(details)
    }

    pub(crate) fn path_not_found() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    pub(crate) fn method_not_allowed(method: &str) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({method})"),
        )
    }

    pub(crate) fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub(crate) fn too_large_resource_version(requested: u64, current: u64) -> Self {
        Self::new(
            504,
            "Timeout",
            format!("Too large resource version: {requested}, current: {current}"),
        )
    }

    /// An injected failure with the given status code.
    pub(crate) fn injected(code: u16, retry_after: Option<u32>) -> Self {
        let message = match code {
            429 => "Too many requests, please try again later.".to_string(),
            500 => "Internal error occurred: injected fault".to_string(),
            503 => {
                "The server is currently unable to handle the request (injected fault)".to_string()
            }
            404 => "the server could not find the requested resource (injected fault)".to_string(),
            other => format!("injected fault ({other})"),
        };
        Self {
            code,
            reason: reason_for(code),
            message,
            details: None,
            retry_after,
        }
    }

    /// The `metav1.Status` JSON for this failure.
    pub(crate) fn status_json(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        let mut details = serde_json::Map::new();
        if let Some(d) = &self.details {
            for (key, value) in [("name", &d.name), ("group", &d.group), ("kind", &d.kind)] {
                if !value.is_empty() {
                    details.insert(key.into(), Value::String(value.clone()));
                }
            }
        }
        if let Some(secs) = self.retry_after {
            details.insert("retryAfterSeconds".into(), json!(secs));
        }
        if !details.is_empty() {
            status["details"] = Value::Object(details);
        }
        status
    }
}
