//! The sample desired states in `fixtures/desired/` read as documented.

use std::path::{Path, PathBuf};

use reconcile::{ReadOptions, Selector, SourceFormat, SqliteSelect, read_csv, read_path};

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/desired")
        .join(name)
}

const C1: &str = "d7c5f7c6-f717-4741-8387-87221c9736f6";
const C3: &str = "80db6d88-6fbd-403a-a10f-ee5d48cf51fa";

#[test]
fn wide_sample_has_mixed_selectors_and_no_opinion_cells() {
    let state = read_csv(&sample("wide.csv"), &ReadOptions::default()).unwrap();
    assert_eq!(state.source.format, SourceFormat::CsvWide);
    assert!(state.warnings.is_empty(), "{:?}", state.warnings);
    let selectors: Vec<String> = state
        .entries()
        .map(|e| e.target.selector.to_string())
        .collect();
    assert_eq!(
        selectors,
        [
            "purpose=customer",
            "purpose=customer",
            "participant_id=a27c60c9-5988-421d-b54e-df67db24db75",
            "purpose=agent",
            "user_id=28e52a76-7453-41d1-8494-52b883b6f7b7",
            "purpose=customer",
        ]
    );
    let first = &state.to_entries()[0];
    assert_eq!(first.target.conversation_id, C1);
    assert_eq!(
        first.attributes.keys().collect::<Vec<_>>(),
        ["campaign", "tier"]
    );
    assert_eq!(state.to_entries()[5].attributes["tier"], "gold, priority");
    assert_eq!(
        state.to_entries()[5].attributes["callback_reason"],
        "said \"call me after 5\""
    );
}

#[test]
fn long_sample_clears_with_empty_values() {
    let state = read_csv(&sample("long.csv"), &ReadOptions::default()).unwrap();
    assert_eq!(state.source.format, SourceFormat::CsvLong);
    assert_eq!(state.len(), 3);
    assert_eq!(state.to_entries()[0].attributes["promo_code"], "");
    assert_eq!(state.to_entries()[0].lines, [2, 3, 4]);
    assert_eq!(
        state.to_entries()[2].target.selector,
        Selector::Purpose("agent".into())
    );
    assert_eq!(state.to_entries()[2].target.conversation_id, C3);
}

#[test]
fn crlf_bom_sample_reads_like_plain_csv() {
    let state = read_csv(&sample("crlf_bom.csv"), &ReadOptions::default()).unwrap();
    assert_eq!(state.len(), 2);
    assert_eq!(state.to_entries()[0].target.conversation_id, C1);
    assert_eq!(state.to_entries()[1].attributes["tier"], "silver");
    assert_eq!(state.to_entries()[1].lines, [3]);
}

#[tokio::test]
async fn sqlite_seed_builds_a_readable_desired_state() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("desired.db");
    let seed = std::fs::read_to_string(sample("desired.sql")).unwrap();
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(&seed)
        .unwrap();

    // read_path recognises the database by its header bytes.
    let state = read_path(&db, &SqliteSelect::default(), &ReadOptions::default())
        .await
        .unwrap();
    assert_eq!(state.source.format, SourceFormat::Sqlite);
    assert_eq!(state.len(), 4);
    assert_eq!(state.to_entries()[1].attributes["promo_code"], "");
    assert_eq!(state.source.sha256.len(), 64);
}

#[test]
fn the_input_table_holds_every_data_row_with_the_lines_entries_use() {
    for name in ["wide.csv", "long.csv", "crlf_bom.csv"] {
        let state = read_csv(&sample(name), &ReadOptions::default()).unwrap();
        let lines: Vec<u64> = state.input.rows().map(|r| r.line).collect();
        let mut entry_lines: Vec<u64> = state.entries().flat_map(|e| e.lines.clone()).collect();
        entry_lines.sort_unstable();
        assert_eq!(lines, entry_lines, "{name}");
        assert_eq!(state.input.header[0], "conversation_id", "{name}");
        assert!(
            state
                .input
                .rows()
                .all(|r| r.cells().count() == state.input.header.len() && r.problem.is_none()),
            "{name}"
        );
    }
}
