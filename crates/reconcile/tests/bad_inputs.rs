//! Runs the bad-input corpus in `fixtures/bad/`: every `NAME.csv` (or `NAME.sql`, an SQLite
//! database seed) must fail with exactly the lines of `NAME.expected`, with the file shown by
//! its name. An optional `NAME.options` sets read options (`max_request_bytes = 64`, ...).
//! Adding a file pair adds a case.

use std::fs::File;
use std::path::{Path, PathBuf};

use reconcile::{ReadOptions, SourceError, SqliteSelect, read_csv_from, read_sqlite};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/bad")
}

fn read_options(path: &Path) -> ReadOptions {
    let mut options = ReadOptions::default();
    let Ok(text) = std::fs::read_to_string(path) else {
        return options;
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (name, value) = line
            .split_once('=')
            .expect("options lines are `name = value`");
        let (name, value) = (name.trim(), value.trim());
        let number = || value.parse::<usize>().expect("numeric option");
        match name {
            "max_key_len" => options.limits.max_key_len = number(),
            "max_value_len" => options.limits.max_value_len = number(),
            "max_keys_per_target" => options.limits.max_keys_per_target = number(),
            "max_request_bytes" => options.limits.max_request_bytes = number(),
            "default_purpose" => options.default_purpose = value.to_owned(),
            other => panic!("unknown option {other:?} in {}", path.display()),
        }
    }
    options
}

fn render(result: Result<reconcile::DesiredState, SourceError>) -> String {
    match result {
        Ok(state) => format!("unexpectedly valid: {} entries\n", state.len()),
        Err(err) if !err.problems().is_empty() => {
            err.problems().iter().map(|p| format!("{p}\n")).collect()
        }
        Err(err) => format!("{err}\n"),
    }
}

async fn run_sqlite_case(seed: &Path, options: &ReadOptions) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let stem = seed.file_stem().expect("file stem").to_string_lossy();
    let db = dir.path().join(format!("{stem}.db"));
    let sql = std::fs::read_to_string(seed).expect("read seed");
    rusqlite::Connection::open(&db)
        .expect("create database")
        .execute_batch(&sql)
        .expect("seed database");
    let rendered = render(read_sqlite(&db, &SqliteSelect::default(), options).await);
    rendered.replace(&format!("{}/", dir.path().display()), "")
}

#[tokio::test]
async fn every_bad_input_fails_with_exactly_the_expected_problems() {
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("fixtures/bad exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("csv" | "sql")))
        .collect();
    inputs.sort();
    let mut failures = Vec::new();
    for input in &inputs {
        let name = input.file_name().expect("file name").to_string_lossy();
        let expected = std::fs::read_to_string(input.with_extension("expected"))
            .unwrap_or_else(|_| panic!("{name} has no sibling .expected file"));
        let options = read_options(&input.with_extension("options"));
        let actual = if input.extension().is_some_and(|e| e == "sql") {
            run_sqlite_case(input, &options).await
        } else {
            let file = File::open(input).expect("open input");
            render(read_csv_from(file, &name, &options))
        };
        if actual != expected {
            failures.push(format!(
                "--- {name}\nexpected:\n{expected}actual:\n{actual}"
            ));
        }
    }
    assert!(
        inputs.len() >= 20,
        "the corpus has only {} cases",
        inputs.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_expected_file_has_an_input() {
    for entry in std::fs::read_dir(corpus_dir()).expect("fixtures/bad exists") {
        let path = entry.expect("dir entry").path();
        if path
            .extension()
            .is_some_and(|e| e == "expected" || e == "options")
        {
            let has_input = ["csv", "sql"]
                .iter()
                .any(|ext| path.with_extension(ext).exists());
            assert!(has_input, "{} has no input file beside it", path.display());
        }
    }
}
