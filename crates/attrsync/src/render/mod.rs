//! Human renderings of the command's products. Pure: they return text, `commands` prints it.

pub mod call;
pub mod plan;
pub mod summary;

/// ANSI styling that is a no-op when color is off.
pub use report::text::Style;

/// A value as it is shown to people (JSON-quoted), as the HTML report shows it.
pub use report::text::quoted;
