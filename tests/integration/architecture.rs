//! Keeps ARCHITECTURE.md true: every top-level module of `src/` sits in one layer of its table,
//! every `crate::`/`super::` reference points to the same layer or a lower one, and there is no
//! circle among the modules of any folder. Reads the sources as text: no build of its own.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/ARCHITECTURE.md");

/// Module name -> layer number, from the table rows `| N | `a`, `b` | ... |`.
fn layers() -> BTreeMap<String, u32> {
    let doc = fs::read_to_string(DOC).expect("ARCHITECTURE.md");
    let mut layers = BTreeMap::new();
    for line in doc.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (Some(number), Some(modules)) = (cells.get(1), cells.get(2)) else {
            continue;
        };
        let Ok(layer) = number.parse::<u32>() else {
            continue;
        };
        for name in modules.split('`').skip(1).step_by(2) {
            let previous = layers.insert(name.to_string(), layer);
            assert!(previous.is_none(), "`{name}` is in two layers");
        }
    }
    assert!(!layers.is_empty(), "ARCHITECTURE.md has no layer table");
    layers
}

/// One source file: its module path (`["proxy", "read"]`; a folder's `mod.rs` is the folder).
struct Source {
    module: Vec<String>,
    code: String,
}

fn sources() -> Vec<Source> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(Path::new(SRC), &mut files);
    files
        .into_iter()
        .filter_map(|path| {
            let rel = path.strip_prefix(SRC).unwrap();
            let mut module: Vec<String> = rel
                .with_extension("")
                .iter()
                .map(|s| s.to_string_lossy().into_owned())
                .collect();
            match module.last().map(String::as_str) {
                Some("mod") => {
                    module.pop();
                }
                // The crate root and the binary are not modules of a layer.
                Some("lib" | "main") if module.len() == 1 => return None,
                // Unit tests kept in their own file are not part of the module's code.
                Some("tests") => return None,
                _ => {}
            }
            let text = fs::read_to_string(&path).unwrap();
            let code = text.split("mod tests").next().unwrap_or_default();
            let code: String = code
                .lines()
                .map(|l| l.split("//").next().unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n");
            Some(Source { module, code })
        })
        .collect()
}

/// Every path a file names from `crate::`, `super::` or `self::`, groups (`{a, b::c}`) expanded,
/// as absolute module paths (items included: the caller trims them).
fn references(src: &Source) -> Vec<Vec<String>> {
    let bytes = src.code.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let at_word_start = i == 0 || !is_ident(bytes[i - 1]) && bytes[i - 1] != b':';
        let starts = [&b"crate::"[..], b"super::", b"self::"];
        if at_word_start && starts.iter().any(|p| bytes[i..].starts_with(p)) {
            let (paths, used) = parse_path(&bytes[i..]);
            for path in paths {
                if let Some(abs) = absolute(&src.module, &path) {
                    found.push(abs);
                }
            }
            i += used.max(1);
        } else {
            i += 1;
        }
    }
    found
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Parse `a::b::{c, d::e}` into its paths; returns them and the bytes consumed.
fn parse_path(bytes: &[u8]) -> (Vec<Vec<String>>, usize) {
    let mut prefix = Vec::new();
    let mut i = 0;
    loop {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < bytes.len() && bytes[i] == b'{' {
            let mut paths = Vec::new();
            i += 1;
            loop {
                while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b',') {
                    i += 1;
                }
                if i >= bytes.len() || bytes[i] == b'}' {
                    return (paths, i + 1);
                }
                let (inner, used) = parse_path(&bytes[i..]);
                for p in inner {
                    paths.push(prefix.iter().cloned().chain(p).collect());
                }
                i += used.max(1);
                // Skip `as alias` and anything else up to the next item.
                while i < bytes.len() && bytes[i] != b',' && bytes[i] != b'}' {
                    i += 1;
                }
            }
        }
        let start = i;
        while i < bytes.len() && is_ident(bytes[i]) {
            i += 1;
        }
        if start == i {
            return (vec![prefix], i);
        }
        prefix.push(String::from_utf8_lossy(&bytes[start..i]).into_owned());
        if bytes[i..].starts_with(b"::") {
            i += 2;
        } else {
            return (vec![prefix], i);
        }
    }
}

/// Resolve `crate::`/`super::`/`self::` against the referring module.
fn absolute(module: &[String], path: &[String]) -> Option<Vec<String>> {
    let mut base: Vec<String> = module.to_vec();
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            rest = &rest[1..];
        }
        Some("self") => rest = &rest[1..],
        Some("super") => {
            while rest.first().map(String::as_str) == Some("super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        _ => return None,
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// The longest prefix of `path` that is a module with a file of its own.
fn module_of(path: &[String], modules: &BTreeSet<Vec<String>>) -> Vec<String> {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| modules.contains(p))
        .unwrap_or_default()
}

/// Arrows between the entries (files and sub-folders) of every folder: `folder -> (a -> {b})`.
fn arrows() -> BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> {
    let sources = sources();
    let modules: BTreeSet<Vec<String>> = sources.iter().map(|s| s.module.clone()).collect();
    let mut arrows: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for src in &sources {
        for reference in references(src) {
            let target = module_of(&reference, &modules);
            // The folder both sit in, and the entry of it each belongs to.
            let common = src
                .module
                .iter()
                .zip(&target)
                .take_while(|(a, b)| a == b)
                .count();
            let (Some(from), Some(to)) = (src.module.get(common), target.get(common)) else {
                continue; // a folder's own mod.rs and its children: how Rust declares them
            };
            arrows
                .entry(src.module[..common].to_vec())
                .or_default()
                .entry(from.clone())
                .or_default()
                .insert(to.clone());
        }
    }
    arrows
}

/// The strongly connected components of more than one node (Tarjan).
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        for w in s.graph.get(v).into_iter().flatten() {
            if !s.index.contains_key(w.as_str()) {
                visit(s, w);
                let lw = s.low[w.as_str()];
                s.low.insert(v, s.low[v].min(lw));
            } else if s.stack.contains(&w.as_str()) {
                let iw = s.index[w.as_str()];
                s.low.insert(v, s.low[v].min(iw));
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.found
}

#[test]
fn every_module_is_in_one_layer() {
    let layers = layers();
    let top: BTreeSet<String> = sources()
        .iter()
        .filter_map(|s| s.module.first().cloned())
        .collect();
    let missing: Vec<&String> = top.iter().filter(|m| !layers.contains_key(*m)).collect();
    assert!(missing.is_empty(), "not in ARCHITECTURE.md: {missing:?}");
    let gone: Vec<&String> = layers.keys().filter(|m| !top.contains(*m)).collect();
    assert!(
        gone.is_empty(),
        "in ARCHITECTURE.md but not in src/: {gone:?}"
    );
}

#[test]
fn no_module_uses_one_above_it() {
    let layers = layers();
    let top = arrows().remove(&Vec::new()).unwrap_or_default();
    let mut upward = Vec::new();
    for (from, targets) in &top {
        for to in targets {
            if let (Some(a), Some(b)) = (layers.get(from), layers.get(to)) {
                if b > a {
                    upward.push(format!("{from} (layer {a}) -> {to} (layer {b})"));
                }
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports from a higher layer: {upward:#?}"
    );
}

#[test]
fn no_import_circles_in_any_folder() {
    let mut found = Vec::new();
    for (folder, graph) in arrows() {
        for circle in circles(&graph) {
            found.push(format!(
                "src/{}: {}",
                folder.join("/"),
                circle.join(" <-> ")
            ));
        }
    }
    assert!(found.is_empty(), "import circles: {found:#?}");
}

#[test]
fn the_checker_sees_a_circle_and_an_upward_arrow() {
    // The checks above pass only if they can fail: a made-up graph with a circle is caught.
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    graph.entry("a".into()).or_default().insert("b".into());
    graph.entry("b".into()).or_default().insert("a".into());
    graph.entry("c".into()).or_default().insert("a".into());
    assert_eq!(
        circles(&graph),
        vec![vec!["a".to_string(), "b".to_string()]]
    );
    // And references resolve as Rust resolves them.
    let src = Source {
        module: vec!["config".into(), "validate".into(), "s3".into()],
        code: "use super::super::checker::Checker;\nuse super::{endpoint::base_url, auth};\n\
               let x = crate::http::range::evaluate;"
            .into(),
    };
    let refs = references(&src);
    assert!(refs.contains(&vec!["config".into(), "checker".into(), "Checker".into()]));
    assert!(refs.contains(&vec![
        "config".into(),
        "validate".into(),
        "endpoint".into(),
        "base_url".into()
    ]));
    assert!(refs.contains(&vec!["config".into(), "validate".into(), "auth".into()]));
    assert!(refs.contains(&vec!["http".into(), "range".into(), "evaluate".into()]));
}
