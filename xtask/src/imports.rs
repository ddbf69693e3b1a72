//! An architecture check: no circle of files in the binary's crate import each other (each
//! file's `crate::` and `super::` paths, and `main.rs`'s own module paths, as edges).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path (`commands::apply`, `""` for `main.rs`) -> the source, tests left out.
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(src).unwrap().with_extension("");
                let mut name = rel.to_string_lossy().replace('/', "::");
                if name == "main" {
                    name.clear();
                } else if let Some(parent) = name.strip_suffix("::mod") {
                    name = parent.to_owned();
                }
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let code = text.split("#[cfg(test)]").next().unwrap_or("").to_owned();
                out.insert(name, code);
            }
        }
    }
    out
}

/// The longest module that `path` (`a::b::c`) starts with.
fn module_of(path: &[&str], modules: &BTreeMap<String, String>) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|m| modules.contains_key(m))
}

/// Paths after `prefix` in `code`: `crate::a::b` -> `["a", "b"]`, `crate::{a, b::c}` -> both.
fn paths_after<'a>(code: &'a str, prefix: &str) -> Vec<Vec<&'a str>> {
    let mut out = Vec::new();
    for (at, _) in code.match_indices(prefix) {
        let rest = &code[at + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(0)];
            out.extend(group.split(',').map(|p| p.trim().split("::").collect()));
        } else {
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            out.push(rest[..end].split("::").filter(|s| !s.is_empty()).collect());
        }
    }
    out
}

/// Edges between the crate's modules.
pub fn edges(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules(src);
    let mut edges = BTreeMap::new();
    for (me, code) in &modules {
        let mut deps = BTreeSet::new();
        for path in paths_after(code, "crate::") {
            // An item that is in no module (`crate::Ui`) is the crate root's: `main.rs`.
            deps.insert(module_of(&path, &modules).unwrap_or_default());
        }
        let parent: Vec<&str> = me.split("::").filter(|s| !s.is_empty()).collect();
        let parent = &parent[..parent.len().saturating_sub(1)];
        for path in paths_after(code, "super::") {
            let full: Vec<&str> = parent.iter().copied().chain(path).collect();
            deps.insert(module_of(&full, &modules).unwrap_or_else(|| parent.join("::")));
        }
        if me.is_empty() {
            // `main.rs` names its own modules without `crate::`.
            for name in modules
                .keys()
                .filter(|m| !m.is_empty() && !m.contains("::"))
            {
                if code.contains(&format!("{name}::")) {
                    deps.insert(name.clone());
                }
            }
        }
        deps.remove(me);
        edges.insert(me.clone(), deps);
    }
    edges
}

/// Every circle of modules (strongly connected components of more than one).
pub fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Kosaraju: reachability both ways is small enough to compute directly here.
    let reach = |from: &String| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(m) = todo.pop() {
            for next in edges.get(&m).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&String, BTreeSet<String>> =
        edges.keys().map(|m| (m, reach(m))).collect();
    let mut done = BTreeSet::new();
    let mut circles = Vec::new();
    for m in edges.keys() {
        if done.contains(m) {
            continue;
        }
        let circle: Vec<String> = edges
            .keys()
            .filter(|o| *o == m || (reaches[m].contains(*o) && reaches[o].contains(m)))
            .cloned()
            .collect();
        done.extend(circle.iter().cloned());
        if circle.len() > 1 {
            circles.push(circle);
        }
    }
    circles
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binarys_files_import_each_other_in_no_circle() {
        let src = crate::workspace_root().join("crates/attrsync/src");
        let edges = edges(&src);
        assert!(
            edges.len() > 20,
            "the binary's modules were found: {edges:?}"
        );
        assert_eq!(circles(&edges), Vec::<Vec<String>>::new());
    }

    #[test]
    fn a_circle_is_found() {
        let edges: BTreeMap<String, BTreeSet<String>> = [
            ("a", vec!["b"]),
            ("b", vec!["c"]),
            ("c", vec!["a"]),
            ("d", vec!["a"]),
        ]
        .into_iter()
        .map(|(m, deps)| (m.into(), deps.into_iter().map(String::from).collect()))
        .collect();
        assert_eq!(circles(&edges), vec![vec!["a", "b", "c"]]);
    }
}
