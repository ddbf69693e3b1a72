//! `cargo xtask dist [--debug]`: the archive that the README's install section, systemd units
//! and Kubernetes examples use, and the check that unpacks and runs it.
//!
//! `target/dist/attrsync-VERSION-TRIPLE.tar.gz` (the host's triple; `-debug` appended for a
//! debug build) holds one directory of the same name:
//!
//! ```text
//! attrsync                       the binary
//! man/man1/attrsync*.1           man pages (from the CLI definition, `attrsync generate-man`)
//! completions/attrsync.bash      `attrsync completions bash`; also _attrsync (zsh), attrsync.fish
//! systemd/*.service, *.timer     packaging/systemd/, byte for byte (the README shows the same text)
//! attrsync.env.example           packaging/attrsync.env.example
//! README.md LICENSE-MIT LICENSE-APACHE
//! ```
//!
//! next to `…tar.gz.sha256` (`sha256sum -c` format). Every archive is checked after it is
//! built: the README shows the units as shipped, the sum, the files, and the unpacked binary's `--version`, `demo` (the whole job
//! against the built-in simulator) and `audit runs` reading the demo's store with the example
//! env file. Std only: cargo, `tar` and `sha256sum` do the work.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{cargo, env_or, target_dir, workspace_root};

/// The shells whose completions are shipped, and the file each one's goes into (the names the
/// shells look for: bash-completion's, zsh's `_COMMAND`, fish's).
const COMPLETIONS: [(&str, &str); 3] = [
    ("bash", "attrsync.bash"),
    ("zsh", "_attrsync"),
    ("fish", "attrsync.fish"),
];

/// Top-level files copied from the workspace root.
const DOCS: [&str; 3] = ["README.md", "LICENSE-MIT", "LICENSE-APACHE"];

const ENV_EXAMPLE: &str = "attrsync.env.example";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    Release,
    /// A quick build for tests of the packaging itself (`cargo xtask ci`).
    Debug,
}

/// A built archive.
#[derive(Debug)]
pub struct Archive {
    /// `target/dist/NAME.tar.gz`.
    pub path: PathBuf,
    /// `NAME`: the archive's one top-level directory.
    pub name: String,
}

/// `cargo xtask dist [--debug]`.
pub fn dist(args: &[&str]) -> Result<(), String> {
    let profile = match args {
        [] => Profile::Release,
        ["--debug"] => Profile::Debug,
        _ => return Err("usage: cargo xtask dist [--debug]".to_owned()),
    };
    let archive = build(profile)?;
    verify(&archive)?;
    let size = std::fs::metadata(&archive.path).map_or(0, |m| m.len());
    eprintln!(
        "dist: {} ({:.1} MiB) and its .sha256, unpacked and checked",
        archive.path.display(),
        size as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}

/// Builds the binary and the archive with its `.sha256`.
pub fn build(profile: Profile) -> Result<Archive, String> {
    let root = workspace_root();
    let target = target_dir();
    let mut args = vec!["build", "--locked", "-p", "attrsync", "--bin", "attrsync"];
    if profile == Profile::Release {
        args.insert(1, "--release");
    }
    cargo(&args)?;
    let binary = target
        .join(match profile {
            Profile::Release => "release",
            Profile::Debug => "debug",
        })
        .join("attrsync");

    let name = format!(
        "attrsync-{}-{}{}",
        env!("CARGO_PKG_VERSION"),
        host_triple()?,
        if profile == Profile::Debug {
            "-debug"
        } else {
            ""
        }
    );
    let dist = target.join("dist");
    let staging = dist.join(&name);
    remove_dir(&staging)?;
    create_dir(&staging)?;

    copy(&binary, &staging.join("attrsync"))?;
    set_mode(&staging.join("attrsync"), 0o755)?;
    let man = staging.join("man").join("man1");
    run_binary(&binary, &["generate-man", path_str(&man)?], None)?;
    create_dir(&staging.join("completions"))?;
    for (shell, file) in COMPLETIONS {
        let script = run_binary(&binary, &["completions", shell], None)?;
        write(&staging.join("completions").join(file), &script)?;
    }
    create_dir(&staging.join("systemd"))?;
    for unit in systemd_units(&root)? {
        copy(
            &root.join("packaging").join("systemd").join(&unit),
            &staging.join("systemd").join(&unit),
        )?;
    }
    copy(
        &root.join("packaging").join(ENV_EXAMPLE),
        &staging.join(ENV_EXAMPLE),
    )?;
    for doc in DOCS {
        copy(&root.join(doc), &staging.join(doc))?;
    }

    let tarball = format!("{name}.tar.gz");
    let archive = dist.join(&tarball);
    let _ = std::fs::remove_file(&archive);
    // Sorted names and no local user or group, so that two builds differ only by content.
    tool(
        "tar",
        &[
            "--sort=name",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "-czf",
            &tarball,
            &name,
        ],
        &dist,
    )?;
    let sum = tool("sha256sum", &[&tarball], &dist)?;
    write(&dist.join(format!("{tarball}.sha256")), &sum)?;
    remove_dir(&staging)?;
    Ok(Archive {
        path: archive,
        name,
    })
}

/// Checks a built archive: its sum, its files, and that the unpacked binary runs the demo.
pub fn verify(archive: &Archive) -> Result<(), String> {
    let root = workspace_root();
    check_readme_units(&root)?;
    let dist = archive
        .path
        .parent()
        .ok_or("the archive has no directory")?;
    let tarball = file_name(&archive.path)?;
    tool(
        "sha256sum",
        &["--check", &format!("{tarball}.sha256")],
        dist,
    )?;

    let scratch = target_dir()
        .join("tmp")
        .join(format!("dist-verify-{}", std::process::id()));
    remove_dir(&scratch)?;
    create_dir(&scratch)?;
    let result = verify_unpacked(archive, &root, &scratch);
    if result.is_ok() {
        remove_dir(&scratch)?;
    } else {
        eprintln!(
            "dist: the unpacked archive is left in {}",
            scratch.display()
        );
    }
    result
}

fn verify_unpacked(archive: &Archive, root: &Path, scratch: &Path) -> Result<(), String> {
    tool("tar", &["-xzf", path_str(&archive.path)?], scratch)?;
    let unpacked = scratch.join(&archive.name);
    let problem = |what: String| format!("{}: {what}", archive.path.display());

    let binary = unpacked.join("attrsync");
    let mode = std::fs::metadata(&binary)
        .map_err(|e| problem(format!("no attrsync binary: {e}")))?
        .permissions()
        .mode();
    if mode & 0o111 == 0 {
        return Err(problem(format!("attrsync is not executable ({mode:o})")));
    }
    for page in [
        "attrsync.1",
        "attrsync-reconcile.1",
        "attrsync-tag.1",
        "attrsync-audit.1",
    ] {
        let text = read(&unpacked.join("man").join("man1").join(page))?;
        if !text.contains(".TH attrsync") {
            return Err(problem(format!("man/man1/{page} is not a man page")));
        }
    }
    for (shell, file) in COMPLETIONS {
        let text = read(&unpacked.join("completions").join(file))?;
        if !text.contains("attrsync") || text.len() < 100 {
            return Err(problem(format!(
                "completions/{file} is no {shell} completion"
            )));
        }
    }
    // The units and the env example are the repository's, byte for byte.
    let mut shipped: Vec<(PathBuf, PathBuf)> = systemd_units(root)?
        .into_iter()
        .map(|unit| {
            (
                root.join("packaging").join("systemd").join(&unit),
                unpacked.join("systemd").join(&unit),
            )
        })
        .collect();
    shipped.push((
        root.join("packaging").join(ENV_EXAMPLE),
        unpacked.join(ENV_EXAMPLE),
    ));
    for doc in DOCS {
        shipped.push((root.join(doc), unpacked.join(doc)));
    }
    for (source, copy) in &shipped {
        if read(source)? != read(copy)? {
            return Err(problem(format!(
                "{} differs from {}",
                copy.display(),
                source.display()
            )));
        }
    }
    if systemd_units(&unpacked)?.len() != systemd_units(root)?.len() {
        return Err(problem("unexpected files in systemd/".to_owned()));
    }

    // The unpacked binary runs: its version, the whole demo against its own simulator, and a
    // review of the demo's store configured by the shipped env example.
    let version = run_binary(&binary, &["--version"], Some(scratch))?;
    let expected = format!("attrsync {}", env!("CARGO_PKG_VERSION"));
    if version.trim() != expected {
        return Err(problem(format!(
            "--version says {version:?}, not {expected:?}"
        )));
    }
    let demo = scratch.join("demo");
    run_binary(&binary, &["demo", "--dir", path_str(&demo)?], Some(scratch))?;
    let store = demo.join("audit.sqlite");
    let runs = run_binary_with_env_file(
        &binary,
        &unpacked.join(ENV_EXAMPLE),
        &["audit", "runs", "--audit", path_str(&store)?],
        scratch,
    )?;
    if !runs.contains("demo") || !runs.contains("completed") {
        return Err(problem(format!(
            "`audit runs` of the demo's store shows no completed demo run:\n{runs}"
        )));
    }
    Ok(())
}

/// The unit files of `dir/systemd` (or `dir/packaging/systemd` for the workspace root), sorted.
pub fn systemd_units(dir: &Path) -> Result<Vec<String>, String> {
    let packaged = dir.join("packaging").join("systemd");
    let units = if packaged.is_dir() {
        packaged
    } else {
        dir.join("systemd")
    };
    let mut names: Vec<String> = std::fs::read_dir(&units)
        .map_err(|e| format!("cannot list {}: {e}", units.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".service") || name.ends_with(".timer"))
        .collect();
    names.sort();
    Ok(names)
}

/// The README shows every unit of `packaging/systemd` verbatim, as an ` ```ini ` block whose
/// first line is the unit's comment `# /etc/systemd/system/NAME`, and shows no other unit: one
/// text, no copy that can drift.
pub fn check_readme_units(root: &Path) -> Result<(), String> {
    let readme = read(&root.join("README.md"))?;
    let mut shown = Vec::new();
    let mut blocks = readme.split("```ini\n").skip(1);
    for block in blocks.by_ref() {
        let body = block
            .split("\n```")
            .next()
            .ok_or("an unterminated ini block in README.md")?;
        let Some(name) = body
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("# /etc/systemd/system/"))
        else {
            continue;
        };
        let file = root.join("packaging").join("systemd").join(name);
        let shipped = read(&file).map_err(|e| {
            format!("README.md shows the unit {name}, which packaging/systemd lacks: {e}")
        })?;
        if shipped != format!("{body}\n") {
            return Err(format!(
                "README.md's {name} differs from {}: make them the same text",
                file.display()
            ));
        }
        shown.push(name.to_owned());
    }
    for unit in systemd_units(root)? {
        if !shown.contains(&unit) {
            return Err(format!(
                "README.md does not show packaging/systemd/{unit} (an ```ini block starting \
                 with `# /etc/systemd/system/{unit}`)"
            ));
        }
    }
    Ok(())
}

/// The host's target triple, from `rustc -vV`.
fn host_triple() -> Result<String, String> {
    let rustc = env_or("RUSTC", "rustc");
    let output = Command::new(&rustc)
        .arg("-vV")
        .output()
        .map_err(|e| format!("cannot run {rustc}: {e}"))?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .map(str::to_owned)
        .ok_or_else(|| format!("`{rustc} -vV` names no host triple"))
}

/// Runs the built binary in a clean environment (no `.env` is read, no color, no progress
/// bar) and returns its stdout.
fn run_binary(binary: &Path, args: &[&str], dir: Option<&Path>) -> Result<String, String> {
    let mut all = vec!["--env-file", "/dev/null"];
    all.extend_from_slice(args);
    run_clean(binary, &all, dir)
}

fn run_binary_with_env_file(
    binary: &Path,
    env_file: &Path,
    args: &[&str],
    dir: &Path,
) -> Result<String, String> {
    let mut all = vec!["--env-file", path_str(env_file)?];
    all.extend_from_slice(args);
    run_clean(binary, &all, Some(dir))
}

fn run_clean(binary: &Path, args: &[&str], dir: Option<&Path>) -> Result<String, String> {
    let mut command = Command::new(binary);
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NO_COLOR", "1")
        .env("CI", "1")
        .stdin(Stdio::null());
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let shown = format!("{} {}", binary.display(), args.join(" "));
    let output = command
        .output()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`{shown}` failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs a system tool in `dir` and returns its stdout.
fn tool(program: &str, args: &[&str], dir: &Path) -> Result<String, String> {
    let shown = format!("{program} {}", args.join(" "));
    eprintln!("$ (cd {} && {shown})", dir.display());
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`{shown}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn path_str(path: &Path) -> Result<&str, String> {
    path.to_str()
        .ok_or_else(|| format!("{} is not valid UTF-8", path.display()))
}

fn file_name(path: &Path) -> Result<String, String> {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .ok_or_else(|| format!("{} has no file name", path.display()))
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn copy(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::copy(from, to)
        .map(drop)
        .map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("cannot chmod {}: {e}", path.display()))
}

fn create_dir(path: &Path) -> Result<(), String> {
    std::fs::create_dir_all(path).map_err(|e| format!("cannot create {}: {e}", path.display()))
}

fn remove_dir(path: &Path) -> Result<(), String> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot remove {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_shows_every_shipped_unit_as_it_is() {
        check_readme_units(&workspace_root()).unwrap();
    }

    #[test]
    fn a_unit_that_drifted_from_the_readme_is_named() {
        let dir = std::env::temp_dir().join(format!("xtask-units-{}", std::process::id()));
        let units = dir.join("packaging").join("systemd");
        std::fs::create_dir_all(&units).unwrap();
        let unit =
            "# /etc/systemd/system/a.service\n[Service]\nExecStart=/usr/local/bin/attrsync demo\n";
        std::fs::write(units.join("a.service"), unit).unwrap();
        std::fs::write(dir.join("README.md"), format!("x\n```ini\n{unit}```\n")).unwrap();
        check_readme_units(&dir).unwrap();

        std::fs::write(
            dir.join("README.md"),
            format!("```ini\n{}```\n", unit.replace("demo", "sim")),
        )
        .unwrap();
        let error = check_readme_units(&dir).unwrap_err();
        assert!(error.contains("a.service differs"), "{error}");

        std::fs::write(dir.join("README.md"), "no units here\n").unwrap();
        let error = check_readme_units(&dir).unwrap_err();
        assert!(
            error.contains("does not show packaging/systemd/a.service"),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
