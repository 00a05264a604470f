//! Checks that dependencies between the modules of `src/` run one way: no module imports one
//! that imports it back, directly or through others (`docs/architecture.md`, "Module graph").
//!
//! It reads the source as text. A module is a file; it depends on every module it names with a
//! `crate::…` or `super::…` path outside its `#[cfg(test)]` part. A parent's `mod child;` is a
//! declaration, not a dependency.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/sending/run.rs` is `sending::run`; `src/http/mod.rs` is `http`; `src/lib.rs` is ``.
fn module_of(root: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(root).expect("under src");
    let mut parts: Vec<String> = relative
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts.join("::")
}

/// The code of a file without comments and without its `#[cfg(test)]` part.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Expands `a::{b, c::{d, e}}` into `a::b`, `a::c::d`, `a::c::e` (only what follows `prefix`).
fn expand(path: &str) -> Vec<String> {
    let Some(open) = path.find('{') else {
        return vec![path.trim().trim_end_matches("::").to_string()];
    };
    let head = &path[..open];
    let mut depth = 0;
    let mut items = Vec::new();
    let mut start = open + 1;
    for (i, ch) in path.char_indices().skip(open) {
        match ch {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    items.push(&path[start..i]);
                    break;
                }
            }
            ',' if depth == 1 => {
                items.push(&path[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items
        .into_iter()
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .flat_map(|item| {
            if item == "self" {
                vec![head.trim_end_matches("::").to_string()]
            } else {
                expand(&format!("{head}{item}"))
            }
        })
        .collect()
}

/// The paths a file names that start with `crate::` or `super::`, resolved from `module`.
fn named_paths(module: &str, code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(found) = code[from..].find(start) {
            let at = from + found;
            from = at + start.len();
            let glued = code[..at]
                .chars()
                .last()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
            if glued {
                continue;
            }
            // The path runs to the end of its brace group, or to the first character that
            // cannot be in a path.
            let rest = &code[at..];
            let mut depth = 0;
            let mut end = rest.len();
            for (i, ch) in rest.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth > 0 => {
                        depth -= 1;
                        if depth == 0 {
                            end = i + 1;
                            break;
                        }
                    }
                    c if depth == 0 && !(c.is_alphanumeric() || c == '_' || c == ':') => {
                        end = i;
                        break;
                    }
                    _ => {}
                }
            }
            for path in expand(&rest[..end]) {
                let mut segments: Vec<String> = path.split("::").map(str::to_string).collect();
                if segments.first().map(String::as_str) == Some("crate") {
                    segments.remove(0);
                } else {
                    let mut base: Vec<String> = module.split("::").map(str::to_string).collect();
                    while segments.first().map(String::as_str) == Some("super") {
                        segments.remove(0);
                        base.pop();
                    }
                    base.extend(segments);
                    segments = base;
                }
                out.push(segments);
            }
        }
    }
    out
}

/// The longest known module that `path` starts with.
fn target(modules: &BTreeSet<String>, path: &[String]) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|candidate| modules.contains(candidate))
}

/// module → modules it depends on.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&root, f)).collect();
    let mut edges = BTreeMap::new();
    for file in &files {
        let module = module_of(&root, file);
        let text = std::fs::read_to_string(file).expect("source is readable");
        let deps: BTreeSet<String> = named_paths(&module, &code(&text))
            .iter()
            .filter_map(|path| target(&modules, path))
            .filter(|dep| dep != &module && !dep.is_empty())
            .collect();
        edges.insert(module, deps);
    }
    edges
}

/// A cycle through `start`, if there is one.
fn cycle_from(edges: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_string(), vec![start.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for next in edges.get(&node).into_iter().flatten() {
            if next == start {
                let mut cycle = path.clone();
                cycle.push(start.to_string());
                return Some(cycle);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let edges = graph();
    assert!(edges.len() > 40, "the graph reads every file of src/");
    assert!(
        edges["sending::run"].contains("sending::ledger"),
        "the reader sees `use super::…` imports"
    );
    let cycles: Vec<String> = edges
        .keys()
        .filter_map(|module| cycle_from(&edges, module))
        .map(|cycle| cycle.join(" → "))
        .collect();
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn brace_groups_and_parents_resolve_to_modules() {
    assert_eq!(
        expand("crate::sending::{ledger, scheduler::{self, Scheduler}}"),
        [
            "crate::sending::ledger",
            "crate::sending::scheduler",
            "crate::sending::scheduler::Scheduler"
        ]
    );
    let paths = named_paths("sending::run", "use super::jobs::Lease; x = crate::db::Db;");
    assert!(paths.contains(&vec!["sending".into(), "jobs".into(), "Lease".into()]));
    assert!(paths.contains(&vec!["db".into(), "Db".into()]));
}
