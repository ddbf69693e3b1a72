//! The README's task recipes are copied and pasted: every `attrsync` command in them must parse
//! with the current command line, and every link inside the README must name a heading it has.

use clap::Parser;

use crate::cli::Cli;

const README: &str = include_str!("../../../README.md");

/// The part of the README between `## Tasks` and the next `## ` heading.
fn tasks_part() -> &'static str {
    let start = README
        .find("\n## Tasks\n")
        .expect("the README has a ## Tasks part");
    let rest = &README[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    &rest[..end]
}

/// The commands of the recipe blocks (```sh, and ```cron without its five schedule fields), one
/// entry per shell command: lines joined while a quote is open or a line ends in `\`.
fn recipe_commands(part: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut block: Option<&str> = None;
    let mut pending = String::new();
    for line in part.lines() {
        if let Some(kind) = line.strip_prefix("```") {
            block = match block {
                None => Some(kind.trim()),
                Some(_) => None,
            };
            continue;
        }
        let Some(kind) = block else { continue };
        if kind != "sh" && kind != "cron" {
            continue;
        }
        let mut line = line.trim_start().trim_start_matches("$ ").to_owned();
        if pending.is_empty() && kind == "cron" {
            line = line
                .split_whitespace()
                .skip(5)
                .collect::<Vec<_>>()
                .join(" ");
        }
        if let Some(joined) = line.strip_suffix('\\') {
            pending.push_str(joined);
            continue;
        }
        pending.push_str(&line);
        if shlex::split(&pending).is_none() {
            pending.push('\n');
            continue;
        }
        commands.push(std::mem::take(&mut pending));
    }
    assert!(
        pending.is_empty(),
        "an unterminated command in the README: {pending}"
    );
    commands
}

/// The `attrsync` invocations of one shell command line: split at `|`, `;`, `&&`, `||` and `&`,
/// without comments, redirections and leading variable assignments.
fn attrsync_invocations(command: &str) -> Vec<Vec<String>> {
    let words = shlex::split(command).expect("balanced quotes");
    let mut invocations = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut skip_next = false;
    let mut finish = |current: &mut Vec<String>| {
        let words: Vec<String> = std::mem::take(current)
            .into_iter()
            .skip_while(|w| w.contains('=') && !w.starts_with('-'))
            .collect();
        if words.first().map(String::as_str) == Some("attrsync") {
            invocations.push(words);
        }
    };
    for word in words {
        if skip_next {
            skip_next = false;
            continue;
        }
        if word.starts_with('#') {
            break;
        }
        match word.as_str() {
            "|" | ";" | "&&" | "||" | "&" => finish(&mut current),
            ">" | ">>" | "<" | "2>" | "2>&1" => skip_next = word != "2>&1",
            w if w.starts_with('>') || w.starts_with("2>") => {}
            _ => current.push(word),
        }
    }
    finish(&mut current);
    invocations
}

#[test]
fn every_attrsync_command_in_the_task_recipes_parses() {
    let commands = recipe_commands(tasks_part());
    let invocations: Vec<Vec<String>> = commands
        .iter()
        .flat_map(|c| attrsync_invocations(c))
        .collect();
    assert!(
        invocations.len() >= 20,
        "the task recipes hold {} attrsync commands; did the extraction break?",
        invocations.len()
    );
    let failures: Vec<String> = invocations
        .iter()
        .filter_map(|words| {
            Cli::try_parse_from(words)
                .err()
                .map(|e| format!("`{}`: {}", words.join(" "), e.render()))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "README recipes that do not parse:\n{}",
        failures.join("\n")
    );
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn every_link_within_the_readme_names_one_of_its_headings() {
    let mut anchors = Vec::new();
    let mut in_code = false;
    for line in README.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            anchors.push(anchor(line.trim_start_matches('#')));
        }
    }
    let broken: Vec<&str> = README
        .match_indices("](#")
        .map(|(i, _)| {
            let rest = &README[i + 3..];
            &rest[..rest.find(')').expect("a closed link")]
        })
        .filter(|target| !anchors.iter().any(|a| a == target))
        .collect();
    assert!(
        broken.is_empty(),
        "links to headings the README lacks: {broken:?}"
    );
}

#[test]
fn the_recipe_extraction_finds_commands_in_pipes_and_after_assignments() {
    let commands = recipe_commands(
        "```sh\nX=1 attrsync live --csv | sed 's/a/b/' > out.csv   # a comment\nattrsync plan \\\n  a.csv\n```\n",
    );
    let invocations: Vec<_> = commands
        .iter()
        .flat_map(|c| attrsync_invocations(c))
        .collect();
    assert_eq!(
        invocations,
        vec![
            vec!["attrsync", "live", "--csv"],
            vec!["attrsync", "plan", "a.csv"]
        ]
    );
}
