//! How a target's identity is written into its audit row, and read back for `--resume`:
//! `selector` as `purpose=customer, participant_id=…` and `input_lines` as `desired.csv:12,13`.
//! Each text has exactly one writer and one reader here, tested as a round trip.

use reconcile::{Selector, SourceInfo};

/// `file:line,line` of a target, as stored in the audit row.
pub fn lines_text(source: &SourceInfo, lines: &[u64]) -> String {
    let name = std::path::Path::new(&source.path)
        .file_name()
        .map_or_else(|| source.path.clone(), |n| n.to_string_lossy().into_owned());
    let lines: Vec<String> = lines.iter().map(u64::to_string).collect();
    format!("{name}:{}", lines.join(","))
}

/// The line numbers of an audit row's `input_lines` (the inverse of [`lines_text`]).
pub fn input_lines(text: &str) -> Vec<u64> {
    text.rsplit_once(':')
        .map(|(_, lines)| lines.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_default()
}

/// Every selector that reached a target, as stored in the audit row.
pub fn selectors_text(selectors: &[Selector]) -> String {
    selectors
        .iter()
        .map(Selector::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The selectors of an audit row's `selector` (the inverse of [`selectors_text`]); a part that
/// is not `column=value` is left out.
pub fn parse_selectors(text: &str) -> Vec<Selector> {
    text.split(", ")
        .filter_map(|part| {
            let (column, value) = part.split_once('=')?;
            let value = value.to_owned();
            match column {
                "participant_id" => Some(Selector::ParticipantId(value)),
                "purpose" => Some(Selector::Purpose(value)),
                "user_id" => Some(Selector::UserId(value)),
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_lines_round_trip_through_their_audit_text() {
        let source = SourceInfo {
            path: "dir/desired.csv".into(),
            format: reconcile::SourceFormat::CsvWide,
            sha256: String::new(),
        };
        let text = lines_text(&source, &[2, 7]);
        assert_eq!(text, "desired.csv:2,7");
        assert_eq!(input_lines(&text), vec![2, 7]);
    }

    #[test]
    fn selectors_round_trip_through_their_audit_text() {
        let selectors = vec![
            Selector::Purpose("customer".into()),
            Selector::ParticipantId("7d0e5f6a-1b2c-4d3e-8f9a-0b1c2d3e4f5a".into()),
            Selector::UserId("u".into()),
        ];
        let text = selectors_text(&selectors);
        assert_eq!(
            text,
            "purpose=customer, participant_id=7d0e5f6a-1b2c-4d3e-8f9a-0b1c2d3e4f5a, user_id=u"
        );
        assert_eq!(parse_selectors(&text), selectors);
        assert_eq!(parse_selectors("nonsense"), vec![]);
    }
}
