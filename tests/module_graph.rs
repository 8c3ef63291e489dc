//! The module graph of `src/` is one-way: no two top-level modules refer to
//! each other, directly or through others (docs/engine.md, "Module map").
//!
//! A reference is any `crate::x` path (in a `use` or in code, `use
//! crate::{x, y::z}` groups included), a `super::` chain that climbs to the
//! crate root, or a name `lib.rs` re-exports from a module (`crate::open_home`
//! is a use of `recovery`). Comments and string literals do not count.
//! Test code counts too: a cycle through a test module is still a cycle.
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Top-level module -> the top-level modules it refers to.
type Graph = BTreeMap<String, BTreeSet<String>>;

#[test]
fn src_has_no_module_cycle() {
    let graph = scan(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    // A scanner that sees nothing finds no cycle either: check it sees the
    // engine's known shape first.
    assert!(graph.len() >= 15, "only {} modules found", graph.len());
    for (from, to) in [
        ("snapshot", "artifact"),
        ("sandbox", "artifact"),
        ("recovery", "home"),
        ("ffi", "snapshot"),
        ("archive", "manifest"),
    ] {
        assert!(
            graph[from].contains(to),
            "{from} -> {to} not seen; the scanner is broken: {graph:#?}"
        );
    }
    let cycles = cycles(&graph);
    assert!(
        cycles.is_empty(),
        "module cycles in src/ (each a chain of crate:: references):\n{}",
        cycles.join("\n")
    );
}

#[test]
fn the_scanner_finds_every_kind_of_reference_and_the_cycle_they_make() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    let write = |rel: &str, text: &str| {
        let path = src.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    };
    write(
        "lib.rs",
        "pub mod a; pub mod b; pub mod c; pub mod d; pub mod e;\npub use e::entry;\n",
    );
    write(
        "a.rs",
        "//! Mentions crate::d in a comment only.\n\
         use crate::b::Thing;\n\
         fn f() -> &'static str { \"crate::d::nope\" }\n\
         /* crate::d too */\n\
         mod tests { use super::*; fn g() { let _c = '\"'; } }\n",
    );
    write("b/mod.rs", "mod inner;\npub struct Thing;\n");
    write(
        "b/inner.rs",
        "use super::Thing;\nfn h() { crate :: c :: run() }\n",
    );
    write(
        "c.rs",
        "use crate::{\n    a::f,\n    d::{self, x},\n};\npub(crate) fn run() {}\n",
    );
    write(
        "d.rs",
        "fn k() { super::entry() }\nmod m { fn n() { super::super::d::k() } }\n",
    );
    write("e.rs", "pub fn entry() {}\n");

    let graph = scan(src);
    let edges = |m: &str| graph[m].iter().cloned().collect::<Vec<_>>();
    assert_eq!(edges("a"), ["b"]);
    assert_eq!(edges("b"), ["c"]);
    assert_eq!(edges("c"), ["a", "d"]);
    assert_eq!(edges("d"), ["e"]);
    assert_eq!(edges("e"), Vec::<String>::new());
    assert_eq!(cycles(&graph), ["a -> b -> c -> a"]);
}

/// The graph of the crate rooted at `src` (`src/lib.rs` is the root).
fn scan(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph = Graph::new();
    let mut modules = Vec::new();
    for file in &files {
        let path = module_path(src, file);
        if let Some(top) = path.first() {
            graph.entry(top.clone()).or_default();
            modules.push((file, path));
        }
    }
    let lib = code_only(&fs::read_to_string(src.join("lib.rs")).unwrap());
    let reexports = reexports(&tokens(&lib));
    for (file, path) in modules {
        let code = code_only(&fs::read_to_string(file).unwrap());
        let top = path[0].clone();
        for name in root_references(&tokens(&code), &path) {
            let target = reexports.get(&name).unwrap_or(&name);
            if *target != top && graph.contains_key(target) {
                graph.get_mut(&top).unwrap().insert(target.clone());
            }
        }
    }
    graph
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/x.rs` and `src/x/mod.rs` are `[x]`, `src/x/y.rs` is `[x, y]`;
/// `src/lib.rs` is the root, `[]`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut path: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        path.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        path.pop();
    }
    path
}

/// The text with comments, string and character literals blanked out, so
/// `"crate::x"` in a message or `crate::x` in a doc comment is no reference.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            let end = rest.find('\n').unwrap_or(rest.len());
            i += end;
        } else if rest.starts_with("/*") {
            // Block comments nest in Rust.
            let (mut depth, mut j) = (0usize, i);
            while j < b.len() {
                if text[j..].starts_with("/*") {
                    depth += 1;
                    j += 2;
                } else if text[j..].starts_with("*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            i = j;
            out.push(' ');
        } else if let Some(len) = raw_string_len(rest) {
            i += len;
            out.push_str("\"\"");
        } else if b[i] == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            i = j + 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && char_literal_len(rest).is_some() {
            i += char_literal_len(rest).unwrap();
            out.push_str("' '");
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// `r"..."`, `r#"..."#` (and `br` forms): their length, when `s` starts one.
fn raw_string_len(s: &str) -> Option<usize> {
    let body = s.strip_prefix("br").or_else(|| s.strip_prefix('r'))?;
    let hashes = body.len() - body.trim_start_matches('#').len();
    let body = body[hashes..].strip_prefix('"')?;
    let close = format!("\"{}", "#".repeat(hashes));
    let end = body.find(&close)?;
    Some(s.len() - body.len() + end + close.len())
}

/// `'x'`, `'\n'`, `'\u{1F600}'`: their length; `None` for a lifetime (`'a`).
fn char_literal_len(s: &str) -> Option<usize> {
    let inner = &s[1..];
    if let Some(esc) = inner.strip_prefix('\\') {
        // The escaped character itself may be a quote: `'\''`.
        let end = esc.get(1..)?.find('\'')?;
        return Some(1 + 1 + 1 + end + 1);
    }
    let c = inner.chars().next()?;
    inner[c.len_utf8()..]
        .starts_with('\'')
        .then(|| 1 + c.len_utf8() + 1)
}

/// Identifiers (with `$crate` as `crate`) and the punctuation that matters
/// for paths: `::`, `{`, `}`, `,`, `;`. Everything else becomes `?`.
fn tokens(code: &str) -> Vec<String> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(code[start..i].to_string());
        } else if code[i..].starts_with("::") {
            out.push("::".into());
            i += 2;
        } else if c.is_ascii_whitespace() || c == b'$' {
            i += 1;
        } else {
            out.push(match c {
                b'{' | b'}' | b',' | b';' => (c as char).to_string(),
                _ => "?".into(),
            });
            i += 1;
        }
    }
    out
}

/// The first segments of every path that starts at the crate root, from code
/// in the module `path`: `crate::x`, `crate::{x, y}`, and `super::` chains
/// that climb out of `path` (inline `mod m { .. }` blocks count as a level).
fn root_references(toks: &[String], path: &[String]) -> Vec<String> {
    let mut names = Vec::new();
    // Inline module depth: (brace depth at which the block opened).
    let mut inline: Vec<usize> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < toks.len() {
        match toks[i].as_str() {
            "{" => depth += 1,
            "}" => {
                depth = depth.saturating_sub(1);
                if inline.last() == Some(&depth) {
                    inline.pop();
                }
            }
            "mod" if toks.get(i + 2).is_some_and(|t| t == "{") => {
                inline.push(depth);
                depth += 1;
                i += 3;
                continue;
            }
            "crate" if toks.get(i + 1).is_some_and(|t| t == "::") => {
                if i == 0 || toks[i - 1] != "::" {
                    i = first_segments(toks, i + 2, &mut names);
                    continue;
                }
            }
            "super" if i == 0 || toks[i - 1] != "::" => {
                let mut j = i;
                let mut ups = 0;
                while toks.get(j).is_some_and(|t| t == "super")
                    && toks.get(j + 1).is_some_and(|t| t == "::")
                {
                    ups += 1;
                    j += 2;
                }
                if ups > 0 && ups >= path.len() + inline.len() {
                    i = first_segments(toks, j, &mut names);
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    names
}

/// At `toks[i]` (just after `crate::`): push the first segment of each path,
/// `x` or each item of `{x, y::z}`; return where scanning goes on.
fn first_segments(toks: &[String], i: usize, names: &mut Vec<String>) -> usize {
    match toks.get(i).map(String::as_str) {
        Some("{") => {
            let mut depth = 0;
            let mut expect_name = true;
            let mut j = i;
            while j < toks.len() {
                match toks[j].as_str() {
                    "{" => {
                        depth += 1;
                        expect_name = depth == 1;
                    }
                    "}" => {
                        depth -= 1;
                        if depth == 0 {
                            return j + 1;
                        }
                    }
                    "," if depth == 1 => expect_name = true,
                    t if expect_name && depth == 1 => {
                        if t != "self" && t != "?" {
                            names.push(t.to_string());
                        }
                        expect_name = false;
                    }
                    _ => {}
                }
                j += 1;
            }
            j
        }
        Some(name) if name != "?" && name != "::" => {
            names.push(name.to_string());
            i + 1
        }
        _ => i,
    }
}

/// `pub use m::item;` and `pub use m::{a, b};` in `lib.rs`: item -> m.
fn reexports(toks: &[String]) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let mut i = 0;
    while i + 3 < toks.len() {
        if toks[i] == "pub" && toks[i + 1] == "use" && toks[i + 3] == "::" {
            let module = toks[i + 2].clone();
            let mut j = i + 4;
            while j < toks.len() && toks[j] != ";" {
                let t = &toks[j];
                let next = toks.get(j + 1).map(String::as_str);
                if t.chars().all(|c| c.is_alphanumeric() || c == '_') && next != Some("::") {
                    map.insert(t.clone(), module.clone());
                }
                j += 1;
            }
            i = j;
        }
        i += 1;
    }
    map
}

/// Every module on a cycle, as one shortest cycle per group of modules that
/// reach each other ("a -> b -> a"), sorted.
fn cycles(graph: &Graph) -> Vec<String> {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    for start in graph.keys() {
        if seen.contains(start) {
            continue;
        }
        if let Some(cycle) = shortest_cycle(graph, start) {
            seen.extend(cycle.iter().cloned());
            out.push(cycle.join(" -> "));
        }
    }
    out
}

/// Breadth-first from `start` back to itself.
fn shortest_cycle(graph: &Graph, start: &str) -> Option<Vec<String>> {
    let mut parent: BTreeMap<String, String> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start.to_string()]);
    while let Some(node) = queue.pop_front() {
        for next in &graph[&node] {
            if next == start {
                let mut cycle = vec![start.to_string()];
                let mut at = node.clone();
                while at != start {
                    cycle.push(at.clone());
                    at = parent[&at].clone();
                }
                // Built backwards from `node`: put it in walking order.
                cycle[1..].reverse();
                cycle.push(start.to_string());
                return Some(cycle);
            }
            if !parent.contains_key(next) && next != start {
                parent.insert(next.clone(), node.clone());
                queue.push_back(next.clone());
            }
        }
    }
    None
}
