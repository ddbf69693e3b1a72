//! How a desired state is read: default selector, size guards, invalid-row policy.

/// Size guards applied while reading a desired state.
///
/// Genesys documents no per-key, per-value or per-participant limit for participant
/// attributes. Only `max_request_bytes` is a documented Genesys limit; the others are attrsync's
/// own guards against mistakes (a wrong column mapped as a key, a whole document pasted into a
/// cell) and can be raised freely.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest key, in UTF-8 bytes. attrsync's guard (default 200), not a Genesys limit.
    pub max_key_len: usize,
    /// Longest value, in UTF-8 bytes. attrsync's guard (default 2048), not a Genesys limit.
    /// Architect bot flows cap values at 256 characters, but that applies to bot flows only.
    pub max_value_len: usize,
    /// Most keys one target may manage. attrsync's guard (default 100), not a Genesys limit.
    /// Architect bot flows cap at 50 attributes, but that applies to bot flows only.
    pub max_keys_per_target: usize,
    /// Largest PATCH body (`{"attributes":{...}}` with every desired key of a target), in bytes.
    /// Default 512,000: Genesys's documented general request cap (larger requests get
    /// 413 `request.entity.too.large`).
    pub max_request_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_key_len: 200,
            max_value_len: 2048,
            max_keys_per_target: 100,
            max_request_bytes: 512_000,
        }
    }
}

/// Options for reading any desired-state source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadOptions {
    /// Purpose selected when a row names no selector (`--default-purpose`, default `customer`).
    pub default_purpose: String,
    pub limits: Limits,
    /// Drop invalid rows (reported as warnings) and keep the valid ones, instead of failing.
    /// Header problems are never skippable.
    pub skip_invalid: bool,
    /// Wide-form columns that are neither selectors nor keys (e.g. the status columns of a
    /// result file fed back as input).
    pub ignored_columns: Vec<String>,
    /// Whose national numbers `customer_number` and `dialed_number` cells written without a
    /// country code are (`--default-region`); none: such a number is an input error.
    pub default_region: Option<crate::number::Region>,
    /// Keep the source's rows as read ([`crate::DesiredState::input`]), for the audit store and
    /// result files. A follow, which records neither, does without them.
    pub keep_input: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            default_purpose: "customer".to_owned(),
            limits: Limits::default(),
            skip_invalid: false,
            ignored_columns: Vec::new(),
            default_region: None,
            keep_input: true,
        }
    }
}
