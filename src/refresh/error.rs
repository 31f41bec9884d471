//! Refresh errors. Every one names the URL (and page) or file it concerns, and none ever includes the API key.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum RefreshError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("MISP API key: {0}")]
    Key(String),
    #[error("{url}{page}: MISP rejected the API key, or the key lacks permission (HTTP 403): {message}")]
    Forbidden { url: String, page: PageNo, message: String },
    #[error("{url}: the key's role has no API access ({message})")]
    NoApiAccess { url: String, message: String },
    #[error("{url}{page}: HTTP {status}: {message}")]
    Http {
        url: String,
        page: PageNo,
        status: u16,
        message: String,
    },
    #[error("{url}{page}: timed out after {secs} s")]
    Timeout { url: String, page: PageNo, secs: u64 },
    #[error("{url}{page}: {message}")]
    Transport { url: String, page: PageNo, message: String },
    #[error("{url}{page}: response body truncated or unreadable: {message}")]
    Body { url: String, page: PageNo, message: String },
    #[error("{url}{page}: malformed JSON: {message}")]
    Json { url: String, page: PageNo, message: String },
    #[error(
        "{url}: a full pull would shrink the set from {before} to {after} attributes, more than the {max_pct}% \
             `max_shrink` allows; the old set keeps serving until the next full pull confirms it"
    )]
    Shrink {
        url: String,
        before: usize,
        after: usize,
        max_pct: u32,
    },
    #[error("{0}")]
    Load(#[from] crate::load::LoadError),
    #[error("{path}: {message}")]
    Io { path: String, message: String },
}

impl RefreshError {
    /// Whether a retry can help (server errors, timeouts, broken bodies); never for 403 or bad config.
    pub fn retryable(&self) -> bool {
        match self {
            RefreshError::Http { status, .. } => *status >= 500 || *status == 429,
            RefreshError::Timeout { .. } | RefreshError::Transport { .. } | RefreshError::Body { .. } => true,
            _ => false,
        }
    }
}

/// A page number for messages: prints ` (page N)` or nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageNo(pub Option<u32>);

impl std::fmt::Display for PageNo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(p) => write!(f, " (page {p})"),
            None => Ok(()),
        }
    }
}
