//! The house as drawn: no import circle among `src/` files, ports that know only the model, and
//! a core that reaches no edge. Read from the source text: each file's `use` items and inline
//! `crate::` / `super::` / child-module paths, with `pub use` re-exports followed to the file that
//! defines the item. A file taking items from its own parent module (`super::X` into a `mod.rs`)
//! is part of that module and draws no arrow; every other import does. Test modules are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::common::{repo_path, unique_name};

/// Use cases: what the worker, the webhook and the operators do. A port imports none of them.
const USE_CASES: &[&str] = &[
    "src/core/worker.rs",
    "src/core/webhook.rs",
    "src/core/sync.rs",
    "src/core/reconcile.rs",
    "src/core/connection.rs",
    "src/core/drift/",
    "src/core/writes/take.rs",
    "src/core/writes/resolve.rs",
    "src/core/writes/follow.rs",
];

/// The edges: what core must never reach, even through the model.
const EDGES: &[&str] = &[
    "src/adapters/",
    "src/cli/",
    "src/local/",
    "src/simulator/",
    "src/setup.rs",
    "src/lambda.rs",
    "src/config.rs",
    "src/telemetry.rs",
];

#[test]
fn no_import_circle_among_src_files() {
    let house = House::read(&repo_path("src"));
    assert!(house.files.len() >= 60, "read {} files", house.files.len());
    assert!(
        house.arrow_count() >= 150,
        "saw {} arrows",
        house.arrow_count()
    );
    let circles = house.circles();
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        house.describe(&circles)
    );
}

#[test]
fn ports_reach_only_the_model() {
    let house = House::read(&repo_path("src"));
    let ports: Vec<&String> = house
        .files
        .keys()
        .filter(|f| f.starts_with("src/ports/"))
        .collect();
    assert!(ports.len() >= 4, "ports: {ports:?}");
    let mut model_reached = 0;
    for port in ports {
        let reached = house.reachable_from(port);
        model_reached += reached
            .iter()
            .filter(|f| f.starts_with("src/core/"))
            .count();
        for file in &reached {
            assert!(
                !USE_CASES.iter().any(|u| file.starts_with(u)),
                "{port} reaches the use case {file}: {}",
                house.path_between(port, file).join(" -> ")
            );
        }
    }
    assert!(
        model_reached >= 5,
        "the ports reach {model_reached} model files"
    );
}

#[test]
fn core_reaches_no_edge() {
    let house = House::read(&repo_path("src"));
    for file in house.files.keys().filter(|f| f.starts_with("src/core/")) {
        for reached in house.reachable_from(file) {
            assert!(
                !EDGES.iter().any(|e| reached.starts_with(e)),
                "{file} reaches the edge {reached}: {}",
                house.path_between(file, &reached).join(" -> ")
            );
        }
    }
}

/// The check can fail: two files that import each other are a circle, and a port importing a
/// use case is seen.
#[test]
fn the_check_sees_a_circle_and_a_port_reaching_a_use_case() {
    let src = std::env::temp_dir().join(unique_name("house")).join("src");
    let write = |path: &str, text: &str| {
        let path = src.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("lib.rs", "pub mod core;\npub mod ports;\n");
    write("core/mod.rs", "pub mod job;\npub mod worker;\n");
    write(
        "core/job.rs",
        "use crate::core::worker::Outcome;\npub struct Job;\n",
    );
    write(
        "core/worker.rs",
        "use crate::core::{job::Job};\npub enum Outcome {}\n#[cfg(test)]\nmod tests {\n    use crate::ports::X;\n}\n",
    );
    write("ports/mod.rs", "mod queue;\npub use queue::Queue;\n");
    write(
        "ports/queue.rs",
        "pub trait Queue { fn f(&self) -> crate::core::job::Job; }\n",
    );
    let house = House::read(&src);
    let circles = house.circles();
    assert_eq!(circles.len(), 1, "{}", house.describe(&circles));
    assert_eq!(
        circles[0],
        BTreeSet::from([
            "src/core/job.rs".to_owned(),
            "src/core/worker.rs".to_owned()
        ])
    );
    // The test module's import is not an arrow; the port reaches the worker through the job.
    assert!(!house.arrows["src/core/worker.rs"].contains_key("src/ports/mod.rs"));
    let reached = house.reachable_from("src/ports/queue.rs");
    assert!(reached.contains("src/core/worker.rs"), "{reached:?}");
    std::fs::remove_dir_all(src.parent().unwrap()).unwrap();
}

/// Files as `src/...` paths, and for each the files it imports with the names it takes.
struct House {
    /// File -> its module path (`src/core/drift/mod.rs` -> [core, drift]).
    files: BTreeMap<String, Vec<String>>,
    arrows: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
}

impl House {
    fn read(src: &Path) -> House {
        let root = src.parent().unwrap();
        let mut files = BTreeMap::new();
        for path in rust_files(src) {
            let relative = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            if relative.starts_with("src/bin/") {
                continue; // binaries are crates of their own
            }
            files.insert(relative.clone(), module_path(&relative));
        }
        let by_module: BTreeMap<Vec<String>, String> =
            files.iter().map(|(f, m)| (m.clone(), f.clone())).collect();
        let code: BTreeMap<String, String> = files
            .keys()
            .map(|f| {
                (
                    f.clone(),
                    without_tests(&strip_comments(
                        &std::fs::read_to_string(root.join(f)).unwrap(),
                    )),
                )
            })
            .collect();
        let mut house = House {
            files,
            arrows: BTreeMap::new(),
        };
        let reexports: BTreeMap<String, BTreeMap<String, Vec<String>>> = code
            .iter()
            .map(|(f, text)| (f.clone(), house.reexports(f, text, &by_module)))
            .collect();
        for (file, text) in &code {
            let mut arrows: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for path in house.references(file, text, &by_module) {
                if let Some((target, name)) = resolve(&path, &by_module, &reexports) {
                    let own_ancestor = {
                        let (m, t) = (&house.files[file], &house.files[&target]);
                        t.len() < m.len() && m.starts_with(t)
                    };
                    if target != *file && !own_ancestor {
                        arrows.entry(target).or_default().insert(name);
                    }
                }
            }
            house.arrows.insert(file.clone(), arrows);
        }
        house
    }

    fn arrow_count(&self) -> usize {
        self.arrows.values().map(|a| a.len()).sum()
    }

    /// Absolute module paths this file refers to.
    fn references(
        &self,
        file: &str,
        text: &str,
        by_module: &BTreeMap<Vec<String>, String>,
    ) -> Vec<Vec<String>> {
        let here = &self.files[file];
        let mut found = Vec::new();
        let (items, text) = use_items(text);
        for (_, tree) in items {
            for path in expand(&tree) {
                found.extend(absolute(here, &path, by_module));
            }
        }
        // Inline paths: `crate::a::b`, `super::a`, `self::a`, `child::a`.
        let bytes: Vec<char> = text.chars().collect();
        let mut i = 0;
        while i < bytes.len() {
            let starts_word = i == 0
                || !(bytes[i - 1].is_alphanumeric() || bytes[i - 1] == '_' || bytes[i - 1] == ':');
            if starts_word && (bytes[i].is_alphabetic() || bytes[i] == '_') {
                let mut j = i;
                let mut path = String::new();
                while j < bytes.len()
                    && (bytes[j].is_alphanumeric() || bytes[j] == '_' || bytes[j] == ':')
                {
                    path.push(bytes[j]);
                    j += 1;
                }
                if path.contains("::") {
                    let segments: Vec<String> = path
                        .split("::")
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect();
                    found.extend(absolute(here, &segments, by_module));
                }
                i = j;
            } else {
                i += 1;
            }
        }
        found
    }

    /// `pub use` items of a file: the name it exports -> the absolute path it comes from.
    fn reexports(
        &self,
        file: &str,
        text: &str,
        by_module: &BTreeMap<Vec<String>, String>,
    ) -> BTreeMap<String, Vec<String>> {
        let here = &self.files[file];
        let mut map = BTreeMap::new();
        for (public, tree) in use_items(text).0 {
            if !public {
                continue;
            }
            for path in expand(&tree) {
                let (path, alias) = match path.last().and_then(|l| l.split_once(" as ")) {
                    Some((name, alias)) => {
                        let mut p = path.clone();
                        *p.last_mut().unwrap() = name.trim().to_owned();
                        (p, alias.trim().to_owned())
                    }
                    None => (path.clone(), path.last().cloned().unwrap_or_default()),
                };
                if let Some(absolute) = absolute(here, &path, by_module) {
                    map.insert(alias, absolute);
                }
            }
        }
        map
    }

    /// Sets of files that import each other, each of two files or more.
    fn circles(&self) -> Vec<BTreeSet<String>> {
        let mut seen = BTreeSet::new();
        let mut circles = Vec::new();
        for file in self.files.keys() {
            if seen.contains(file) {
                continue;
            }
            let forward = self.reachable_from(file);
            let circle: BTreeSet<String> = forward
                .iter()
                .filter(|other| *other != file && self.reachable_from(other).contains(file))
                .cloned()
                .chain(std::iter::once(file.clone()))
                .collect();
            if circle.len() > 1 {
                seen.extend(circle.iter().cloned());
                circles.push(circle);
            }
        }
        circles
    }

    fn describe(&self, circles: &[BTreeSet<String>]) -> String {
        let mut text = String::new();
        for circle in circles {
            text.push_str("circle:\n");
            for from in circle {
                for (to, names) in &self.arrows[from] {
                    if circle.contains(to) {
                        let names: Vec<&str> = names.iter().map(String::as_str).collect();
                        text.push_str(&format!("  {from} -> {to}: {}\n", names.join(", ")));
                    }
                }
            }
        }
        text
    }

    fn reachable_from(&self, start: &str) -> BTreeSet<String> {
        let mut reached = BTreeSet::new();
        let mut stack = vec![start.to_owned()];
        while let Some(file) = stack.pop() {
            for next in self.arrows.get(&file).into_iter().flat_map(|a| a.keys()) {
                if reached.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        reached
    }

    /// One chain of imports from `from` to `to`, for a failure's message.
    fn path_between(&self, from: &str, to: &str) -> Vec<String> {
        let mut came_from: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([from.to_owned()]);
        while let Some(file) = queue.pop_front() {
            if file == to {
                let mut chain = vec![to.to_owned()];
                while let Some(previous) = came_from.get(chain.last().unwrap()) {
                    chain.push(previous.clone());
                }
                chain.reverse();
                return chain;
            }
            for next in self.arrows.get(&file).into_iter().flat_map(|a| a.keys()) {
                if !came_from.contains_key(next) && next != from {
                    came_from.insert(next.clone(), file.clone());
                    queue.push_back(next.clone());
                }
            }
        }
        vec![from.to_owned(), "?".into(), to.to_owned()]
    }
}

/// Resolves an absolute path to the file that defines its item (following `pub use`), and the
/// item's name.
fn resolve(
    path: &[String],
    by_module: &BTreeMap<Vec<String>, String>,
    reexports: &BTreeMap<String, BTreeMap<String, Vec<String>>>,
) -> Option<(String, String)> {
    let mut path = path.to_vec();
    for _ in 0..8 {
        let k = (0..=path.len())
            .rev()
            .find(|k| by_module.contains_key(&path[..*k]))?;
        let file = by_module[&path[..k]].clone();
        let Some(name) = path.get(k) else {
            return Some((file, String::from("(module)")));
        };
        match reexports.get(&file).and_then(|r| r.get(name)) {
            Some(origin) if origin != &path => path = origin.clone(),
            _ => return Some((file, name.clone())),
        }
    }
    None
}

/// A path as written in `module`, made absolute; `None` for another crate's.
fn absolute(
    module: &[String],
    path: &[String],
    by_module: &BTreeMap<Vec<String>, String>,
) -> Option<Vec<String>> {
    let (first, rest) = path.split_first()?;
    let mut base: Vec<String> = match first.as_str() {
        "crate" => Vec::new(),
        "self" => module.to_vec(),
        "super" => module[..module.len().checked_sub(1)?].to_vec(),
        child => {
            let mut candidate = module.to_vec();
            candidate.push(child.to_owned());
            if !by_module.contains_key(&candidate) {
                return None;
            }
            module.to_vec()
        }
    };
    let mut rest = if matches!(first.as_str(), "crate" | "self" | "super") {
        rest.to_vec()
    } else {
        path.to_vec()
    };
    while rest.first().is_some_and(|s| s == "super") {
        base.pop()?;
        rest.remove(0);
    }
    base.extend(rest.into_iter().filter(|s| s != "self" && s != "*"));
    Some(base)
}

/// Each `use` item: whether it is `pub` (any visibility), and its tree as written; and the
/// text without them, for the inline paths.
fn use_items(text: &str) -> (Vec<(bool, String)>, String) {
    let mut items = Vec::new();
    let mut others = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("use ") {
        let before = &rest[..at];
        let line_start = before.rfind('\n').map_or(0, |n| n + 1);
        let prefix = before[line_start..].trim();
        let at_statement = prefix.is_empty() || prefix.starts_with("pub");
        let after = &rest[at + 4..];
        match after.find(';') {
            Some(end)
                if at_statement
                    && (at == 0
                        || !rest[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_')) =>
            {
                others.push_str(&rest[..line_start]);
                items.push((
                    prefix.starts_with("pub"),
                    after[..end]
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" "),
                ));
                rest = &after[end + 1..];
            }
            _ => {
                others.push_str(&rest[..at + 4]);
                rest = after;
            }
        }
    }
    others.push_str(rest);
    (items, others)
}

/// `a::{b, c::{d, e}}` -> [a, b], [a, c, d], [a, c, e].
fn expand(tree: &str) -> Vec<Vec<String>> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        let segments: Vec<String> = tree
            .split("::")
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        return vec![segments];
    };
    let prefix: Vec<String> = tree[..open]
        .split("::")
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(|p| {
            expand(p)
                .into_iter()
                .map(|tail| prefix.iter().cloned().chain(tail).collect())
        })
        .collect()
}

fn module_path(relative: &str) -> Vec<String> {
    let inner = relative.trim_start_matches("src/").trim_end_matches(".rs");
    let mut segments: Vec<String> = inner.split('/').map(str::to_owned).collect();
    if matches!(segments.last().map(String::as_str), Some("mod" | "lib")) {
        segments.pop();
    }
    segments
}

pub fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The text without `//` comments (doc links name paths that are not imports) and string
/// literals' contents.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut in_string = false;
        let mut escaped = false;
        let mut previous = ' ';
        for c in line.chars() {
            if in_string {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    in_string = false;
                    out.push('"');
                }
                previous = c;
                continue;
            }
            if c == '/' && previous == '/' {
                out.pop();
                break;
            }
            if c == '"' {
                in_string = true;
            }
            out.push(c);
            previous = c;
        }
        out.push('\n');
    }
    out
}

/// The text without its `#[cfg(test)]` modules (counting braces; strings are already empty).
fn without_tests(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let Some(open) = after.find('{') else { break };
        let item = after["#[cfg(test)]".len()..].trim_start();
        if !item.starts_with("mod ") || after[..open].contains(';') {
            out.push_str("#[cfg(test)]");
            rest = &after["#[cfg(test)]".len()..];
            continue;
        }
        let mut depth = 0;
        let mut end = after.len();
        for (i, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}
