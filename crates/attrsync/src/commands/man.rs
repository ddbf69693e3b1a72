//! `attrsync generate-man DIR` (hidden; run by `cargo xtask man`): man pages from the CLI
//! definition, `attrsync.1` and one `attrsync-COMMAND.1` per command, so they never drift from
//! `--help`.

use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;

use crate::cli::{Cli, GenerateManArgs};
use crate::exit::Exit;
use crate::ui::Ui;

pub fn run(args: &GenerateManArgs, ui: Ui) -> anyhow::Result<Exit> {
    generate(&args.dir)?;
    ui.note(format_args!("man pages written to {}", args.dir.display()));
    Ok(Exit::Success)
}

pub fn generate(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("cannot write man pages into {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_main_page_and_one_per_visible_command() {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path()).unwrap();
        let main = std::fs::read_to_string(dir.path().join("attrsync.1")).unwrap();
        assert!(main.starts_with(".ie"), "{}", &main[..80.min(main.len())]);
        assert!(main.contains(".TH attrsync 1"), "{main}");
        assert!(main.contains("reconcile"), "{main}");
        let reconcile = std::fs::read_to_string(dir.path().join("attrsync-reconcile.1")).unwrap();
        assert!(reconcile.contains("metrics\\-file"), "{reconcile}");
        assert!(!dir.path().join("attrsync-generate-man.1").exists());
    }
}
