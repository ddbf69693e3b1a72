//! Every environment variable the binary itself reads, declared once. The Genesys connection
//! variables are declared in `genesys_core::env`.
//!
//! Every lookup goes through [`var`]: the process environment first, then the values of the
//! `.env` file that `main` read once with [`load_dotenv`] (the environment wins). The `.env`
//! values are kept in a map; the process environment is never changed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The `.env` file's values, read once by `main` before any command runs.
static DOTENV: OnceLock<HashMap<String, String>> = OnceLock::new();

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
/// The gc CLI profile to read (as `--profile`); none is read unless one is named.
pub const PROFILE: &str = "ATTRSYNC_PROFILE";
/// Conversation ids per multi-id analytics read (as `--liveness-batch`; default 100).
pub const LIVENESS_BATCH: &str = "ATTRSYNC_LIVENESS_BATCH";

/// How often `reconcile --follow` looks at its source for a new version (as `--poll-interval`;
/// default 200ms).
pub const POLL_INTERVAL: &str = "ATTRSYNC_POLL_INTERVAL";

/// The binary's own variables with a one-line description, for `--help` and the README.
pub const OWN: &[(&str, &str)] = &[
    (
        AUDIT,
        "audit store path (default $XDG_STATE_HOME/attrsync/audit.sqlite)",
    ),
    (
        PROFILE,
        "gc CLI profile to read from ~/.gc/config.toml (as --profile; none by default)",
    ),
    (
        LIVENESS_BATCH,
        "ids per multi-id analytics read of apply/plan/reconcile (as --liveness-batch; 100)",
    ),
    (
        POLL_INTERVAL,
        "how often reconcile --follow looks at its source (as --poll-interval; 200ms)",
    ),
    (NO_COLOR, "disable color"),
    (RUST_LOG, "log filter, wins over -v/-q"),
    (CI, "non-interactive: progress as plain lines"),
    (XDG_STATE_HOME, "base of the default audit store path"),
    (
        HOME,
        "fallback base of the default audit store path; ~ of ~/.gc/config.toml",
    ),
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

/// The value of the environment variable `name`: the process environment first, then the
/// `.env` file. The one function through which the binary reads its environment.
pub fn var(name: &str) -> Option<String> {
    lookup(name, |name| std::env::var(name).ok(), DOTENV.get())
}

/// The process environment alone (settings resolution tells it apart from `.env`).
pub fn process_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The `.env` file's value alone.
pub fn dotenv_var(name: &str) -> Option<String> {
    DOTENV.get().and_then(|values| values.get(name).cloned())
}

fn lookup(
    name: &str,
    process: impl Fn(&str) -> Option<String>,
    dotenv: Option<&HashMap<String, String>>,
) -> Option<String> {
    process(name).or_else(|| dotenv.and_then(|values| values.get(name).cloned()))
}

pub fn is_set(name: &str) -> bool {
    var(name).is_some_and(|v| !v.is_empty())
}

/// A `.env` file that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the environment file {}", path.display())]
pub struct DotenvError {
    path: PathBuf,
    #[source]
    source: dotenvy::Error,
}

/// Reads `path` (or `./.env` or the nearest parent's, when `None`) into the lookup of [`var`],
/// once. A missing default `.env` is not an error; a missing explicit file is. Returns the file
/// read, if any.
pub fn load_dotenv(path: Option<&Path>) -> Result<Option<PathBuf>, DotenvError> {
    let (values, found) = read_dotenv(path)?;
    let _ = DOTENV.set(values);
    Ok(found)
}

type DotenvValues = (HashMap<String, String>, Option<PathBuf>);

fn read_dotenv(path: Option<&Path>) -> Result<DotenvValues, DotenvError> {
    let path = match path {
        Some(path) => path.to_path_buf(),
        None => match find_dotenv() {
            Some(found) => found,
            None => return Ok((HashMap::new(), None)),
        },
    };
    let failed = |source| DotenvError {
        path: path.clone(),
        source,
    };
    let mut values = HashMap::new();
    for item in dotenvy::from_path_iter(&path).map_err(failed)? {
        let (key, value) = item.map_err(failed)?;
        values.insert(key, value);
    }
    Ok((values, Some(path)))
}

/// `.env` in the current directory or the nearest parent that has one.
fn find_dotenv() -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok()?;
    cwd.ancestors()
        .map(|dir| dir.join(".env"))
        .find(|candidate| candidate.is_file())
}

/// Where the audit store lives when neither `--audit` nor `ATTRSYNC_AUDIT` says.
pub fn default_audit_path() -> PathBuf {
    let base = var(XDG_STATE_HOME)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| var(HOME).map(|h| Path::new(&h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("attrsync").join("audit.sqlite")
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    #[test]
    fn the_environment_wins_over_the_dotenv_file() {
        let dotenv = HashMap::from([
            ("A".to_owned(), "from-file".to_owned()),
            ("B".to_owned(), "from-file".to_owned()),
        ]);
        let process = |name: &str| (name == "A").then(|| "from-env".to_owned());
        assert_eq!(
            super::lookup("A", process, Some(&dotenv)).as_deref(),
            Some("from-env")
        );
        assert_eq!(
            super::lookup("B", process, Some(&dotenv)).as_deref(),
            Some("from-file")
        );
        assert_eq!(super::lookup("C", process, Some(&dotenv)), None);
    }

    #[test]
    fn a_dotenv_file_is_read_into_a_map_not_into_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("test.env");
        std::fs::write(
            &path,
            "ATTRSYNC_DOTENV_TEST_ONLY=from-file\nPATH=from-dotenv-file\n",
        )
        .unwrap();
        let (values, found) = super::read_dotenv(Some(&path)).unwrap();
        assert_eq!(found.as_deref(), Some(path.as_path()));
        assert_eq!(values["ATTRSYNC_DOTENV_TEST_ONLY"], "from-file");
        assert_eq!(std::env::var_os("ATTRSYNC_DOTENV_TEST_ONLY"), None);
        assert_ne!(std::env::var("PATH").unwrap(), "from-dotenv-file");

        let err = super::read_dotenv(Some(&dir.path().join("missing.env"))).unwrap_err();
        assert!(err.to_string().contains("missing.env"), "{err}");
    }
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
