//! `SECURITY.md` stays the index of the security requirements the crate
//! cites: every `R<number>` cited in the code, the tests, the examples, the
//! scripts, the benches or a Markdown file has a `### R<number>.` section
//! there; every test it names (`tests/file.rs::name`,
//! `src/file.rs::module::name`) exists and is a test; and a section lists no
//! tests only when its status says the work is in progress or not done.
//!
//! A citation is `R` and one or two digits as a whole word, after a line
//! start, a space, `(` or `/`: so `R58` in `(R58, R61)` or `// R2:` counts,
//! but not the Redis pointer tag in `` `R2` ``, `'R2'` or `b"R2"`, nor an
//! identifier such as `R2D2`, `XR12` or `R12_KEY`. A range `R51 to R53` (or
//! `R58–R67`) cites every number in it.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// Directories whose files are scanned for citations (recursively).
const SCANNED_DIRS: [&str; 5] = ["src", "tests", "examples", "scripts", "benches"];
/// Files that are not scanned: the index itself, the changelog (which
/// retells history), and this test (its examples are not citations).
const NOT_SCANNED: [&str; 3] = ["SECURITY.md", "CHANGELOG.md", "tests/security_md.rs"];
/// The statuses a section may have; the last two may list no tests.
const WITH_TESTS: [&str; 2] = ["met", "partly"];
const WITHOUT_TESTS: [&str; 2] = ["in progress (issue 10)", "not yet"];

/// The requirement numbers `text` cites, each with the byte offset of its
/// first citation.
fn citations(text: &str) -> BTreeMap<u32, usize> {
    let b = text.as_bytes();
    let mut found = BTreeMap::new();
    let mut i = 0;
    while i < b.len() {
        let starts_word = i == 0 || matches!(b[i - 1], b'\n' | b'\r' | b' ' | b'(' | b'/');
        match (starts_word && b[i] == b'R').then(|| number_at(b, i + 1)).flatten() {
            Some((n, end)) => {
                found.entry(n).or_insert(i);
                // A range: `R<a> to R<b>`, `R<a>–R<b>` or `R<a>-R<b>`.
                let rest = &text[end..];
                let tail = [" to R", "–R", "-R"].iter().find_map(|sep| rest.strip_prefix(&sep[..]));
                if let Some((last, _)) = tail.and_then(|t| number_at(t.as_bytes(), 0)) {
                    for m in n..=last {
                        found.entry(m).or_insert(i);
                    }
                }
                i = end;
            }
            None => i += 1,
        }
    }
    found
}

/// One or two digits at `at` that end a word: the number and where it ends.
fn number_at(b: &[u8], at: usize) -> Option<(u32, usize)> {
    let digits = b.get(at..)?.iter().take_while(|c| c.is_ascii_digit()).count();
    let end = at + digits;
    let ends_word = b.get(end).is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == b'_'));
    if !(1..=2).contains(&digits) || !ends_word {
        return None;
    }
    std::str::from_utf8(&b[at..end]).ok()?.parse().ok().map(|n| (n, end))
}

/// Every file under `dir`, in a stable order.
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// The scanned files, as paths relative to the crate root.
fn scanned_files() -> Vec<String> {
    let root = Path::new(ROOT);
    let mut paths = Vec::new();
    for dir in SCANNED_DIRS {
        files_under(&root.join(dir), &mut paths);
    }
    for entry in fs::read_dir(root).expect("the crate root").filter_map(Result::ok) {
        let path = entry.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "md") {
            paths.push(path);
        }
    }
    paths
        .iter()
        .filter_map(|p| p.strip_prefix(root).ok())
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .filter(|p| !NOT_SCANNED.contains(&p.as_str()))
        .collect()
}

/// One `### R<n>.` section of SECURITY.md.
struct Section {
    number: u32,
    heading: String,
    status: Option<String>,
    tests: Vec<String>,
}

/// The test paths named in `text`: code spans of the form
/// `tests/….rs::name` or `src/….rs::module::name`.
fn test_paths(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|span| (span.starts_with("tests/") || span.starts_with("src/")) && span.contains(".rs::"))
        .map(str::to_string)
        .collect()
}

fn sections(security_md: &str) -> Vec<Section> {
    let mut out = Vec::new();
    let mut current: Option<Section> = None;
    for line in security_md.lines() {
        if line.starts_with("## ") || line.starts_with("### ") {
            out.extend(current.take());
            if let Some(rest) = line.strip_prefix("### R") {
                let number = rest.split_once(". ").and_then(|(n, _)| n.parse().ok()).unwrap_or(0);
                current = Some(Section { number, heading: line.to_string(), status: None, tests: Vec::new() });
            }
        } else if let Some(section) = current.as_mut() {
            if let Some((_, status)) = line.split_once("**Status:**") {
                section.status = Some(status.trim().to_string());
            }
            section.tests.extend(test_paths(line));
        }
    }
    out.extend(current);
    out
}

/// Whether `name` is listed in an `over_both_transports!( … )` invocation
/// of the file `text`.
fn generated_over_transports(text: &str, name: &str) -> bool {
    let mut rest = text;
    while let Some(at) = rest.find("over_both_transports!(") {
        let body = &rest[at + "over_both_transports!(".len()..];
        let end = body.find(')').unwrap_or(body.len());
        if body[..end].split(',').any(|item| item.trim() == name) {
            return true;
        }
        rest = &body[end..];
    }
    false
}

/// Why the test path `path` does not name a test, if it does not.
fn missing_test(path: &str) -> Option<String> {
    let (file, items) = path.split_once(".rs::").map(|(f, i)| (format!("{f}.rs"), i))?;
    let name = items.rsplit("::").next().unwrap_or_default();
    let Ok(text) = fs::read_to_string(Path::new(ROOT).join(&file)) else {
        return Some(format!("`{path}`: no file {file}"));
    };
    let lines: Vec<&str> = text.lines().collect();
    for (at, line) in lines.iter().enumerate() {
        let mut t = line.trim_start();
        for prefix in ["pub(crate) ", "pub ", "async "] {
            t = t.strip_prefix(prefix).unwrap_or(t);
        }
        let Some(after) = t.strip_prefix("fn ").and_then(|t| t.strip_prefix(name)) else { continue };
        if !after.starts_with(['(', '<']) {
            continue;
        }
        // Attributes and comments above the function: one must be a test's.
        let above =
            lines[..at].iter().rev().map(|l| l.trim()).take_while(|l| l.starts_with('#') || l.starts_with("//"));
        if above.clone().any(|l| l.starts_with("#[") && l.contains("test")) {
            return None;
        }
        // A test body run over both transports (`over_both_transports!`
        // makes `name::cookie` and `name::header` tests of it).
        if generated_over_transports(&text, name) {
            return None;
        }
        return Some(format!("`{path}`: fn {name} in {file} is not a test"));
    }
    Some(format!("`{path}`: no fn {name} in {file}"))
}

#[test]
fn every_cited_requirement_has_a_section_and_every_named_test_exists() {
    let security_md = fs::read_to_string(Path::new(ROOT).join("SECURITY.md")).expect("SECURITY.md");
    let mut problems = Vec::new();

    // Every citation, with where it first appears.
    let mut cited: BTreeMap<u32, String> = BTreeMap::new();
    for file in scanned_files() {
        let Ok(text) = fs::read_to_string(Path::new(ROOT).join(&file)) else { continue };
        for (n, at) in citations(&text) {
            let line = text[..at].matches('\n').count() + 1;
            cited.entry(n).or_insert_with(|| format!("{file}:{line}"));
        }
    }
    assert!(cited.len() > 10, "the scan found almost no citations: {cited:?}");

    let sections = sections(&security_md);
    let headed: BTreeSet<u32> = sections.iter().map(|s| s.number).collect();
    for (n, at) in &cited {
        if !headed.contains(n) {
            problems.push(format!("R{n} is cited ({at}) but SECURITY.md has no `### R{n}.` section"));
        }
    }
    for pair in sections.windows(2) {
        if pair[0].number >= pair[1].number {
            problems
                .push(format!("sections out of order or repeated: {:?} then {:?}", pair[0].heading, pair[1].heading));
        }
    }
    for s in &sections {
        if s.number == 0 {
            problems.push(format!("{:?}: not of the form `### R<n>. <title>`", s.heading));
            continue;
        }
        let status = s.status.as_deref().unwrap_or_default();
        let needs_tests = WITH_TESTS.iter().any(|w| status.starts_with(w));
        let may_lack_tests = WITHOUT_TESTS.iter().any(|w| status.starts_with(w));
        if !needs_tests && !may_lack_tests {
            problems.push(format!(
                "{:?}: status {status:?} is none of {WITH_TESTS:?} {WITHOUT_TESTS:?} (a `**Status:**` line)",
                s.heading
            ));
        }
        if needs_tests && s.tests.is_empty() {
            problems.push(format!("{:?}: status {status:?} but no tests listed", s.heading));
        }
        let uncited_mark = s.heading.ends_with("(uncited)");
        match cited.get(&s.number) {
            Some(at) if uncited_mark => problems.push(format!("{:?} is marked (uncited) but {at} cites it", s.heading)),
            None if !uncited_mark && !may_lack_tests => problems.push(format!(
                "{:?}: nothing cites it; mark it (uncited), or remove it if the citation went",
                s.heading
            )),
            _ => {}
        }
    }
    for path in test_paths(&security_md).into_iter().collect::<BTreeSet<_>>() {
        problems.extend(missing_test(&path));
    }
    assert!(problems.is_empty(), "SECURITY.md is out of date:\n{}", problems.join("\n"));
}

#[test]
fn the_citation_pattern_finds_citations_and_nothing_that_only_looks_like_one() {
    let numbers = |text: &str| citations(text).into_keys().collect::<Vec<_>>();
    assert_eq!(numbers("// R2: the cookie"), [2]);
    assert_eq!(numbers("R7 at a line start"), [7]);
    assert_eq!(numbers("policy (R58, R61) and /R9/"), [9, 58, 61]);
    assert_eq!(numbers("fail closed (R43, R51 to R53, R86)."), [43, 51, 52, 53, 86]);
    assert_eq!(numbers("R14 to R19:"), [14, 15, 16, 17, 18, 19]);
    assert_eq!(numbers("citing R58–R61 now"), [58, 59, 60, 61]);
    // The Redis pointer tag, identifiers, and numbers of three digits.
    for not_one in ["`R2`", "'R2' ..", "b\"R2\"", "R2D2", "XR12", "R12_KEY", "R123", "HR12", "R", "R x", "ÄR5"] {
        assert_eq!(numbers(not_one), [] as [u32; 0], "{not_one}");
    }
}

#[test]
fn a_test_path_must_name_an_existing_test() {
    assert_eq!(missing_test("tests/security_md.rs::a_test_path_must_name_an_existing_test"), None);
    assert!(missing_test("tests/security_md.rs::missing_test").unwrap().contains("is not a test"));
    assert!(missing_test("tests/security_md.rs::no_such_fn").unwrap().contains("no fn"));
    assert!(missing_test("tests/no_such_file.rs::x").unwrap().contains("no file"));
}
