//! Every environment variable the binary itself reads, declared once. The Genesys connection
//! variables are declared in `genesys_core::env`.

/// Path of the audit store (SQLite). Default: `$XDG_STATE_HOME/attrsync/audit.sqlite`.
pub const AUDIT: &str = "ATTRSYNC_AUDIT";
/// Disables color when set to any non-empty value (<https://no-color.org>).
pub const NO_COLOR: &str = "NO_COLOR";
/// Log filter (tracing `EnvFilter` syntax); wins over `-v`/`-q`.
pub const RUST_LOG: &str = "RUST_LOG";
/// Set by CI systems: progress is printed as plain lines, never as an animated bar.
pub const CI: &str = "CI";
/// Base of the default audit store location.
pub const XDG_STATE_HOME: &str = "XDG_STATE_HOME";
/// Fallback base of the default audit store location (`$HOME/.local/state`).
pub const HOME: &str = "HOME";
/// Recorded as the run's operator in the audit store.
pub const USER: &str = "USER";

/// The binary's own variables with a one-line description, for `--help` and the README.
pub const OWN: &[(&str, &str)] = &[
    (
        AUDIT,
        "audit store path (default $XDG_STATE_HOME/attrsync/audit.sqlite)",
    ),
    (NO_COLOR, "disable color"),
    (RUST_LOG, "log filter, wins over -v/-q"),
    (CI, "non-interactive: progress as plain lines"),
    (XDG_STATE_HOME, "base of the default audit store path"),
    (HOME, "fallback base of the default audit store path"),
    (USER, "recorded as the run's operator"),
];

/// The "Environment" section of `attrsync --help`.
pub fn help_text() -> String {
    let mut text = String::from("Environment:\n");
    for var in genesys_core::env::ALL {
        text.push_str(&format!("  {:<34} {}\n", var.name, var.description));
    }
    for (name, description) in OWN {
        text.push_str(&format!("  {name:<34} {description}\n"));
    }
    text.push_str("\nTry `attrsync demo` to see it work against the built-in simulator.");
    text
}

pub fn is_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

/// Where the audit store lives when neither `--audit` nor `ATTRSYNC_AUDIT` says.
pub fn default_audit_path() -> std::path::PathBuf {
    let base = std::env::var_os(XDG_STATE_HOME)
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os(HOME).map(|h| std::path::Path::new(&h).join(".local/state")))
        .unwrap_or_else(|| std::path::PathBuf::from("."));
    base.join("attrsync").join("audit.sqlite")
}

#[cfg(test)]
mod tests {
    /// The README's environment table is the user's copy of this list: keep them equal.
    #[test]
    fn readme_documents_every_environment_variable() {
        let readme = include_str!("../../../README.md");
        let all = super::OWN
            .iter()
            .map(|(name, _)| *name)
            .filter(|name| !matches!(*name, "XDG_STATE_HOME" | "HOME" | "USER"))
            .chain(genesys_core::env::ALL.iter().map(|v| v.name));
        for name in all {
            assert!(
                readme.contains(&format!("`{name}`")),
                "README does not document {name}"
            );
        }
    }
}
