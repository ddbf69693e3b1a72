//! Commands the tool prints for the person to run next ("Resume with: …", "attrsync audit show
//! …"): each carries the flags, as given, that decide where the run lives (its audit store, the
//! `.env` file, the gc profile, the API), so that it works when pasted.

use std::path::{Path, PathBuf};

use crate::cli::{ConnectionArgs, CredentialFileArgs};

/// The flags a printed command repeats.
#[derive(Clone, Debug, Default)]
pub struct Hints {
    /// `--env-file`, `--profile`, `--gc-config`, as given (before the command, where every
    /// command accepts them).
    global: Vec<String>,
    /// `--region`, `--api-url`, `--login-url`, `--client-id`, as given.
    connection: Vec<String>,
    /// `--audit`, unless it is the default store.
    audit: Option<PathBuf>,
}

impl Hints {
    pub fn new(global: &CredentialFileArgs, connection: Option<&ConnectionArgs>) -> Self {
        let mut hints = Hints::default();
        let flag = |into: &mut Vec<String>, name: &str, value: Option<String>| {
            if let Some(value) = value {
                into.extend([name.to_owned(), value]);
            }
        };
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        flag(&mut hints.global, "--env-file", path(&global.env_file));
        flag(&mut hints.global, "--profile", global.profile.clone());
        flag(&mut hints.global, "--gc-config", path(&global.gc_config));
        if let Some(args) = connection {
            let c = &mut hints.connection;
            flag(c, "--region", args.region.map(|r| r.to_string()));
            flag(c, "--api-url", args.api_url.as_ref().map(|u| u.to_string()));
            flag(
                c,
                "--login-url",
                args.login_url.as_ref().map(|u| u.to_string()),
            );
            flag(c, "--client-id", args.client_id.clone());
        }
        hints
    }

    /// The same flags, for a run in the store at `audit`.
    pub fn with_audit(mut self, audit: &Path) -> Self {
        self.audit = (audit != crate::env::default_audit_path()).then(|| audit.to_path_buf());
        self
    }

    /// A command that connects (e.g. `apply --resume RUN`).
    pub fn connect(&self, args: &[&str]) -> String {
        self.command(args, true)
    }

    /// A command that only reads the audit store (e.g. `audit show RUN`).
    pub fn review(&self, args: &[&str]) -> String {
        self.command(args, false)
    }

    fn command(&self, args: &[&str], connects: bool) -> String {
        let audit = self
            .audit
            .iter()
            .flat_map(|path| ["--audit".to_owned(), path.display().to_string()]);
        let words = std::iter::once("attrsync".to_owned())
            .chain(connects.then(|| self.global.clone()).into_iter().flatten())
            .chain(args.iter().map(|a| (*a).to_owned()))
            .chain(audit)
            .chain(
                connects
                    .then(|| self.connection.clone())
                    .into_iter()
                    .flatten(),
            );
        words.map(|w| quoted(&w)).collect::<Vec<_>>().join(" ")
    }
}

/// A word as a POSIX shell reads it back.
pub(crate) fn quoted(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    #[test]
    fn a_printed_command_repeats_the_flags_that_decide_where_the_run_lives() {
        let cli = Cli::try_parse_from([
            "attrsync",
            "--env-file",
            "my env/.env",
            "apply",
            "d.csv",
            "--api-url",
            "http://127.0.0.1:9/",
            "--audit",
            "runs.sqlite",
        ])
        .unwrap();
        let Command::Apply(args) = &cli.command else {
            panic!("apply")
        };
        let hints = Hints::new(&cli.credential_files(), Some(&args.connection))
            .with_audit(Path::new("runs.sqlite"));
        assert_eq!(
            hints.connect(&["apply", "--resume", "R"]),
            "attrsync --env-file 'my env/.env' apply --resume R --audit runs.sqlite --api-url http://127.0.0.1:9/"
        );
        // A review connects to nothing: no connection flags (the store is named by --audit).
        assert_eq!(
            hints.review(&["audit", "show", "R"]),
            "attrsync audit show R --audit runs.sqlite"
        );
        assert_eq!(quoted("it's"), r"'it'\''s'");
    }
}
