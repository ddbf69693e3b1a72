//! `attrsync get`: a call's participants and attributes as a table.

use std::fmt::Write;

use genesys_core::models::CallConversation;

use super::{Style, quoted};

pub fn call_table(call: &CallConversation, style: Style) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} {}", style.bold("Conversation"), call.id);
    let header = ["PARTICIPANT", "PURPOSE", "STATE", "NAME"];
    let rows: Vec<[String; 4]> = call
        .participants
        .iter()
        .map(|p| {
            [
                p.id.clone(),
                p.purpose.clone().unwrap_or_default(),
                p.state.as_ref().map(|s| s.to_string()).unwrap_or_default(),
                p.name.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 4]| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                let _ = write!(s, "{cell:<w$}  ");
            }
        }
        s.trim_end().to_owned()
    };
    let _ = writeln!(out, "{}", style.dim(&line(header)));
    for (row, participant) in rows.iter().zip(&call.participants) {
        let _ = writeln!(out, "{}", line([&row[0], &row[1], &row[2], &row[3]]));
        let key_width = participant
            .attributes
            .keys()
            .map(|k| k.chars().count())
            .max()
            .unwrap_or(0);
        for (key, value) in &participant.attributes {
            let _ = writeln!(out, "    {key:<key_width$} = {}", quoted(value));
        }
    }
    if call.participants.is_empty() {
        let _ = writeln!(out, "(no participants)");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use genesys_core::models::{CallMediaParticipant, ParticipantState};

    #[test]
    fn table_lists_participants_and_their_attributes() {
        let call = CallConversation {
            id: "c1".into(),
            participants: vec![CallMediaParticipant {
                id: "p1".into(),
                purpose: Some("customer".into()),
                state: Some(ParticipantState::Connected),
                name: Some("Jane".into()),
                attributes: [("tier".to_owned(), "gold".to_owned())].into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let text = call_table(&call, Style { color: false });
        assert_eq!(
            text,
            "Conversation c1\nPARTICIPANT  PURPOSE   STATE      NAME\np1           customer  connected  Jane\n    tier = \"gold\"\n"
        );
    }
}
