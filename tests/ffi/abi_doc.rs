//! docs/abi.md is the reference the bindings and C users read; these tests
//! keep it in step with the library:
//! - its error-code table with the `ErrorCode` enum (names and numbers);
//! - its progress phases with the engine's phase list;
//! - every result and error object of tests/golden/*.json (which
//!   tests/ffi_golden.rs pins to what the library returns) with the shape
//!   the document gives for that call: a field the library returns that the
//!   document does not name fails, and so does a documented field the
//!   library does not return.
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn doc() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/abi.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The text of the `## title` section, up to the next `## `.
fn section<'d>(doc: &'d str, title: &str) -> &'d str {
    let head = format!("\n## {title}\n");
    let start = doc
        .find(&head)
        .unwrap_or_else(|| panic!("docs/abi.md has no section {title:?}"))
        + head.len();
    let end = doc[start..].find("\n## ").map_or(doc.len(), |i| start + i);
    &doc[start..end]
}

/// The cells of each table row in `text` (header and rule rows included).
/// `\|` inside a cell is a literal bar, not a cell boundary.
fn table_rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| {
            let l = l.replace("\\|", "\u{0}");
            let cells: Vec<&str> = l.split('|').collect();
            cells[1..cells.len() - 1]
                .iter()
                .map(|c| c.replace('\u{0}', "|").trim().to_string())
                .collect()
        })
        .collect()
}

/// Every `code span` in `text`, in order.
fn code_spans(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// The error-code table: number -> (name, detail fields).
fn documented_codes(doc: &str) -> BTreeMap<i32, (String, BTreeSet<String>)> {
    let mut codes = BTreeMap::new();
    for row in table_rows(section(doc, "Error codes")) {
        let Ok(number) = row[0].parse::<i32>() else {
            continue; // header and rule rows
        };
        assert_eq!(
            row.len(),
            4,
            "error table row {row:?}: want code, name, meaning, details"
        );
        let details = code_spans(&row[3]).iter().map(|s| s.to_string()).collect();
        let old = codes.insert(number, (row[1].clone(), details));
        assert!(old.is_none(), "code {number} is listed twice");
    }
    codes
}

#[test]
fn error_table_lists_every_code_with_its_number() {
    let documented: BTreeMap<i32, String> = documented_codes(&doc())
        .into_iter()
        .map(|(n, (name, _))| (n, name))
        .collect();
    let mut actual: BTreeMap<i32, String> = microsnap::ffi::all_codes()
        .map(|(n, name)| (n, name.to_string()))
        .collect();
    actual.insert(0, "ok".into());
    assert_eq!(
        documented, actual,
        "docs/abi.md's error codes differ from ErrorCode"
    );
}

#[test]
fn progress_phases_are_the_engines() {
    let doc = doc();
    let progress = section(&doc, "Progress");
    let line = progress
        .lines()
        .find(|l| l.starts_with("Progress phases:"))
        .expect("docs/abi.md: no \"Progress phases:\" line");
    let listed: Vec<&str> = code_spans(line);
    let engine: Vec<&str> = microsnap::ffi::all_phases().collect();
    assert_eq!(
        listed, engine,
        "docs/abi.md's phase list differs from the engine's"
    );
    // The table that says what each phase counts has one row per phase.
    let rows: Vec<String> = table_rows(progress)
        .into_iter()
        .skip(2)
        .map(|r| r[0].trim_matches('`').to_string())
        .collect();
    assert_eq!(
        rows, engine,
        "docs/abi.md's phase table differs from the engine's phases"
    );
}

/// A result shape as the functions table writes it:
/// `{"path","snapshots":[digest…],"bytes_written"}`, `{"head": handle}`, ...
#[derive(Debug)]
enum Shape {
    Object(Vec<(String, Shape)>),
    Array(Box<Shape>),
    /// An object of "Objects returned" (`handle`) or a scalar (`digest`, `n`).
    Named(String),
    /// A literal (`"/abs"`) or a member given without a value: any scalar.
    Scalar,
}

struct ShapeParser<'t> {
    text: &'t str,
    at: usize,
}

impl ShapeParser<'_> {
    fn parse(text: &str) -> Shape {
        let mut p = ShapeParser { text, at: 0 };
        let shape = p.shape();
        p.space();
        assert_eq!(p.at, text.len(), "trailing text in result shape {text:?}");
        shape
    }

    fn rest(&self) -> &str {
        &self.text[self.at..]
    }

    fn space(&mut self) {
        let rest = self.rest();
        self.at += rest.len() - rest.trim_start().len();
    }

    fn eat(&mut self, token: &str) -> bool {
        self.space();
        let found = self.rest().starts_with(token);
        if found {
            self.at += token.len();
        }
        found
    }

    fn expect(&mut self, token: &str) {
        assert!(
            self.eat(token),
            "want {token:?} at {:?} in {:?}",
            self.rest(),
            self.text
        );
    }

    fn string(&mut self) -> String {
        self.expect("\"");
        let end = self.rest().find('"').expect("unterminated string");
        let s = self.rest()[..end].to_string();
        self.at += end + 1;
        s
    }

    fn shape(&mut self) -> Shape {
        self.space();
        if self.eat("{") {
            let mut members = Vec::new();
            while !self.eat("}") {
                let key = self.string();
                self.eat("?"); // optional member
                let value = if self.eat(":") {
                    self.shape()
                } else {
                    Shape::Scalar
                };
                members.push((key, value));
                if !self.eat(",") {
                    self.expect("}");
                    break;
                }
            }
            Shape::Object(members)
        } else if self.eat("[") {
            let element = self.shape();
            let _ = self.eat("…") || self.eat("...");
            self.expect("]");
            Shape::Array(Box::new(element))
        } else if self.rest().starts_with('"') {
            self.string();
            Shape::Scalar
        } else {
            let end = self
                .rest()
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ' '))
                .unwrap_or(self.rest().len());
            let name = self.rest()[..end].trim().to_string();
            assert!(
                !name.is_empty(),
                "no shape at {:?} in {:?}",
                self.rest(),
                self.text
            );
            self.at += end;
            Shape::Named(name)
        }
    }
}

/// "Objects returned": each `**name**` with the JSON example that follows it.
fn documented_objects(doc: &str) -> BTreeMap<String, Value> {
    let text = section(doc, "Objects returned");
    let mut objects = BTreeMap::new();
    // Pieces: the text before the first name, then name, text, name, text...
    for part in text.split("**").skip(1).collect::<Vec<_>>().chunks(2) {
        let [name, after] = part else { continue };
        let json = match (after.find("```json"), after.find("`{")) {
            (Some(block), inline) if inline.map_or(true, |i| block < i) => {
                let body = &after[block + "```json".len()..];
                &body[..body.find("```").expect("unterminated json block")]
            }
            (_, Some(inline)) => {
                let body = &after[inline + 1..];
                &body[..body.find('`').unwrap()]
            }
            _ => panic!("object {name:?} has no JSON example"),
        };
        let value: Value = serde_json::from_str(json)
            .unwrap_or_else(|e| panic!("object {name:?}: example is not JSON ({e}): {json}"));
        objects.insert(name.to_string(), value);
    }
    assert!(
        objects.contains_key("handle"),
        "no handle object in {objects:?}"
    );
    objects
}

/// Functions table: name (`msnap_x`) -> the shapes its result cell gives
/// (alternatives separated by `;`; prose like "status only" gives none).
fn documented_results(
    doc: &str,
    objects: &BTreeMap<String, Value>,
) -> BTreeMap<String, Vec<Shape>> {
    let mut results = BTreeMap::new();
    for row in table_rows(section(doc, "Functions")).into_iter().skip(2) {
        let function = row[0].trim_matches('`');
        let name = &function[..function.find('(').unwrap_or(function.len())];
        let mut shapes = Vec::new();
        for alternative in row[2].split(';') {
            let alternative = alternative.trim();
            if let Some(json) = code_spans(alternative)
                .into_iter()
                .find(|s| s.starts_with('{'))
            {
                shapes.push(ShapeParser::parse(json));
            } else {
                let word = alternative.split(['(', '`']).next().unwrap_or("").trim();
                if objects.contains_key(word) {
                    shapes.push(Shape::Named(word.to_string()));
                }
            }
        }
        results.insert(name.to_string(), shapes);
    }
    results
}

/// Compares keys, recursively; returns what differs.
struct Checker<'o> {
    objects: &'o BTreeMap<String, Value>,
    problems: Vec<String>,
}

impl Checker<'_> {
    fn keys(
        &mut self,
        at: &str,
        returned: &serde_json::Map<String, Value>,
        documented: BTreeSet<&str>,
    ) {
        for k in returned.keys() {
            if !documented.contains(k.as_str()) {
                self.problems.push(format!(
                    "{at}: field {k:?} is returned but docs/abi.md does not list it"
                ));
            }
        }
        for k in documented {
            if !returned.contains_key(k) {
                self.problems.push(format!(
                    "{at}: docs/abi.md lists field {k:?}, which is not returned"
                ));
            }
        }
    }

    fn shape(&mut self, at: &str, v: &Value, shape: &Shape) {
        match (shape, v) {
            (Shape::Object(members), Value::Object(m)) => {
                self.keys(at, m, members.iter().map(|(k, _)| k.as_str()).collect());
                for (k, s) in members {
                    if let Some(x) = m.get(k) {
                        self.shape(&format!("{at}.{k}"), x, s);
                    }
                }
            }
            (Shape::Array(s), Value::Array(items)) => {
                for (i, x) in items.iter().enumerate() {
                    self.shape(&format!("{at}[{i}]"), x, s);
                }
            }
            (Shape::Named(name), _) if self.objects.contains_key(name) => {
                let example = self.objects[name].clone();
                self.example(&format!("{at} ({name})"), v, &example);
            }
            (Shape::Named(_) | Shape::Scalar, x) if !x.is_object() && !x.is_array() => {}
            (s, x) => self
                .problems
                .push(format!("{at}: returned {x}, documented as {s:?}")),
        }
    }

    fn example(&mut self, at: &str, v: &Value, example: &Value) {
        match (v, example) {
            (Value::Object(m), Value::Object(e)) => {
                self.keys(at, m, e.keys().map(String::as_str).collect());
                for (k, x) in m {
                    // Labels are the user's own keys, not the document's.
                    if k == "labels" {
                        continue;
                    }
                    if let Some(y) = e.get(k) {
                        self.example(&format!("{at}.{k}"), x, y);
                    }
                }
            }
            (Value::Array(items), Value::Array(e)) if !e.is_empty() => {
                for (i, x) in items.iter().enumerate() {
                    self.example(&format!("{at}[{i}]"), x, &e[0]);
                }
            }
            // null stands for an absent object (`"integrity": null`).
            _ => {}
        }
    }
}

/// Golden files whose call is documented under another golden's name.
const SAME_CALL: &[(&str, &str)] = &[
    ("sandbox_create_from_snapshot", "sandbox_create"),
    ("sandbox_stop_fork", "sandbox_stop"),
    ("snapshot_create_child", "snapshot_create"),
    ("image_prune_dry_run", "image_prune"),
];

#[test]
fn every_golden_result_has_the_documented_fields() {
    let doc = doc();
    let objects = documented_objects(&doc);
    let results = documented_results(&doc, &objects);
    let codes = documented_codes(&doc);
    let golden_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut checker = Checker {
        objects: &objects,
        problems: Vec::new(),
    };
    let mut checked = 0;
    for entry in std::fs::read_dir(&golden_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().map_or(true, |e| e != "json") {
            continue;
        }
        let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
        let golden: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (status, out) = (&golden["status"], &golden["out"]);
        checked += 1;
        if stem.starts_with("error_") {
            let code = out["code"]
                .as_str()
                .unwrap_or_else(|| panic!("{stem}: no code"));
            let number = status.as_i64().unwrap() as i32;
            let Some((name, details)) = codes.get(&number) else {
                checker
                    .problems
                    .push(format!("{stem}: status {number} is not in the error table"));
                continue;
            };
            assert_eq!(
                name, code,
                "{stem}: status {number} is documented as {name}"
            );
            let mut fields: BTreeSet<&str> = details.iter().map(String::as_str).collect();
            fields.extend(["code", "message"]);
            checker.keys(&stem, out.as_object().unwrap(), fields);
            continue;
        }
        assert_eq!(status, 0, "{stem}: a result golden with a failure status");
        let call = SAME_CALL
            .iter()
            .find(|(golden, _)| *golden == stem)
            .map_or(stem.as_str(), |(_, call)| call);
        let function = format!("msnap_{call}");
        let Some(shapes) = results.get(&function) else {
            checker.problems.push(format!(
                "{stem}: {function} is not in docs/abi.md's function table"
            ));
            continue;
        };
        // The result must match one of the documented alternatives exactly.
        let mut best: Option<Vec<String>> = None;
        for shape in shapes {
            let mut one = Checker {
                objects: &objects,
                problems: Vec::new(),
            };
            one.shape(&stem, out, shape);
            if best.as_ref().map_or(true, |b| one.problems.len() < b.len()) {
                best = Some(one.problems);
            }
        }
        match best {
            None => checker
                .problems
                .push(format!("{stem}: {function} documents no result shape")),
            Some(problems) => checker.problems.extend(problems),
        }
    }
    assert!(
        checked >= 20,
        "only {checked} golden files found in {}",
        golden_dir.display()
    );
    assert!(
        checker.problems.is_empty(),
        "docs/abi.md and tests/golden disagree:\n{}",
        checker.problems.join("\n")
    );
}

/// The checker itself: a field the document does not list is caught at
/// every depth (a top-level result member, a member of a named object, a
/// member of an object inside an array).
#[test]
fn an_undocumented_field_is_caught() {
    let doc = doc();
    let objects = documented_objects(&doc);
    let results = documented_results(&doc, &objects);
    let golden = |name: &str| -> Value {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/{name}.json"));
        serde_json::from_str::<Value>(&std::fs::read_to_string(path).unwrap()).unwrap()["out"]
            .clone()
    };
    let problems = |function: &str, out: &Value| -> Vec<String> {
        let mut c = Checker {
            objects: &objects,
            problems: Vec::new(),
        };
        c.shape(function, out, &results[function][0]);
        c.problems
    };
    let mut export = golden("snapshot_export");
    assert!(problems("msnap_snapshot_export", &export).is_empty());
    export["compression"] = "zstd".into();
    assert_eq!(problems("msnap_snapshot_export", &export).len(), 1);

    let mut import = golden("snapshot_import");
    assert!(problems("msnap_snapshot_import", &import).is_empty());
    import["imported"][1]["verified"] = true.into();
    assert_eq!(problems("msnap_snapshot_import", &import).len(), 1);

    let mut images = golden("image_list");
    images["images"][0]["platform"] = "linux/amd64".into();
    assert_eq!(problems("msnap_image_list", &images).len(), 1);

    let mut dropped = golden("snapshot_get");
    dropped.as_object_mut().unwrap().remove("child_count");
    assert_eq!(problems("msnap_snapshot_get", &dropped).len(), 1);
}
