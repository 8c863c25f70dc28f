//! The library's modules form layers: no top-level module of `src/` uses, directly or
//! through others, a module that uses it back. Read from the code's own `crate::` paths,
//! so a new cycle fails the suite (ARCHITECTURE.md draws the layers).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The top-level module a file of `src/` belongs to (`src/a.rs` and `src/a/b.rs` are `a`);
/// `None` for the crate root and the binary.
fn top_module(rel: &Path) -> Option<String> {
    let mut parts = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned());
    let first = parts.next()?;
    if first == "bin" || first == "main.rs" || first == "lib.rs" {
        return None;
    }
    Some(first.trim_end_matches(".rs").to_string())
}

/// The modules a path after `crate::` starts with: one for `a::b`, each top-level entry
/// for `{a::{b, c}, d}`.
fn first_segments(path: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        let s = s.trim_start();
        let end = s
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(s.len());
        s[..end].to_string()
    };
    let Some(group) = path.strip_prefix('{') else {
        return vec![ident(path)];
    };
    let mut out = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                out.push(ident(&group[start..i]));
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(ident(&group[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

/// Which top-level modules each top-level module names through `crate::`.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for entry in walkdir::WalkDir::new(&src) {
        let entry = entry.unwrap();
        if entry.path().extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let Some(from) = top_module(entry.path().strip_prefix(&src).unwrap()) else {
            continue;
        };
        let text = std::fs::read_to_string(entry.path()).unwrap();
        // Comments out, lines joined: a `use crate::{...}` may span lines.
        let code: Vec<&str> = text
            .lines()
            .map(|l| l.split("//").next().unwrap_or(""))
            .collect();
        let code = code.join(" ");
        let deps = g.entry(from.clone()).or_default();
        let mut rest = code.as_str();
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            for to in first_segments(rest) {
                if to != from && to.chars().next().is_some_and(char::is_lowercase) {
                    deps.insert(to);
                }
            }
        }
    }
    g
}

/// The cycles of `g`: its strongly connected components of more than one module.
fn cycles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let reach = |from: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(m) = todo.pop() {
            for d in g.get(&m).into_iter().flatten() {
                if seen.insert(d.clone()) {
                    todo.push(d.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&String, BTreeSet<String>> = g.keys().map(|m| (m, reach(m))).collect();
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut placed = BTreeSet::new();
    for m in g.keys() {
        if placed.contains(m) || !reaches[m].contains(m) {
            continue;
        }
        let comp: Vec<String> = g
            .keys()
            .filter(|o| *o == m || (reaches[m].contains(*o) && reaches[*o].contains(m)))
            .cloned()
            .collect();
        placed.extend(comp.iter().cloned());
        out.push(comp);
    }
    out
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let g = graph();
    assert!(g.len() > 5, "read too few modules: {g:?}");
    let found = cycles(&g);
    let explain: Vec<String> = found
        .iter()
        .map(|c| {
            let edges: Vec<String> = c
                .iter()
                .flat_map(|m| {
                    g[m].iter()
                        .filter(|d| c.contains(d))
                        .map(move |d| format!("{m} -> {d}"))
                })
                .collect();
            format!("{} ({})", c.join(", "), edges.join("; "))
        })
        .collect();
    assert!(
        found.is_empty(),
        "import cycles between modules of src/: {explain:#?}"
    );
}

#[test]
fn paths_name_their_first_module() {
    assert_eq!(first_segments("log::pages(b)"), vec!["log"]);
    assert_eq!(
        first_segments("{a::{b, c}, d, e::f} rest"),
        vec!["a", "d", "e"]
    );
}

#[test]
fn the_cycle_check_sees_a_cycle() {
    let g: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(
        cycles(&g),
        vec![vec!["a".to_string(), "b".into(), "c".into()]]
    );
}
