//! The commands that run one suite by hand (`cargo test -p` a crate
//! `--test` a binary, a module's name as the filter), wherever the docs,
//! scripts and comments give them, and the filters of `.config/nextest.toml`
//! name test binaries and modules that exist. A command whose binary has
//! moved still compiles everything and then fails in the reader's terminal,
//! or worse, runs nothing and passes; here it fails the build's tests.

use std::path::{Path, PathBuf};

use crate::docs::{assert_all_good, repo};

/// A command (or a nextest filter) that names a test binary of a crate.
#[derive(Debug)]
struct Named {
    /// `file:line`, for failure messages.
    at: String,
    krate: String,
    binary: String,
    /// The modules its test filters name (`openapi::` names `openapi`).
    modules: Vec<String>,
}

/// The word after `flag` in `words`, if any.
fn after(words: &[&str], flag: &str) -> Option<String> {
    let at = words.iter().position(|w| *w == flag)?;
    words.get(at + 1).map(|w| (*w).to_owned())
}

/// The commands of one line that name a test binary. The command ends where
/// its code span does, so prose after it is not read as filters.
fn commands_in(at: String, line: &str) -> Option<Named> {
    let start = line.find("cargo ")?;
    let command = line[start..].split('`').next().unwrap_or_default();
    let words: Vec<&str> = command
        .split(|c: char| c.is_whitespace() || "\"'".contains(c))
        .filter(|w| !w.is_empty())
        .collect();
    let binary = after(&words, "--test")?;
    let krate = after(&words, "-p").unwrap_or_default();
    let binary_at = words.iter().position(|w| *w == "--test")?;
    let modules = words[binary_at + 2..]
        .iter()
        .filter(|w| !w.starts_with('-'))
        .filter_map(|w| w.split_once("::"))
        .map(|(module, _)| module.to_owned())
        .collect();
    Some(Named {
        at,
        krate,
        binary,
        modules,
    })
}

/// The text between `open` and the next `)` after it, in `line`.
fn call(line: &str, open: &str) -> Option<String> {
    let start = line.find(open)? + open.len();
    let len = line[start..].find(')')?;
    Some(line[start..start + len].to_owned())
}

/// The overrides of `.config/nextest.toml` that name a binary, with the
/// module a `test(/^module::/)` filter names.
fn nextest_filters() -> Vec<Named> {
    let path = ".config/nextest.toml";
    let text = std::fs::read_to_string(repo().join(path)).unwrap();
    text.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let binary = call(line, "binary(")?;
            let modules = call(line, "test(/^")
                .and_then(|filter| Some(filter.split_once("::")?.0.to_owned()))
                .into_iter()
                .collect();
            Some(Named {
                at: format!("{path}:{}", i + 1),
                krate: call(line, "package(").unwrap_or_default(),
                binary,
                modules,
            })
        })
        .collect()
}

/// Every Markdown file, shell script and Rust comment of the repository
/// (hidden directories and build output aside), as (path, text).
fn texts(dir: &Path, found: &mut Vec<(PathBuf, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            texts(&path, found);
            continue;
        }
        let text = match path.extension().and_then(|e| e.to_str()) {
            Some("md" | "sh") => std::fs::read_to_string(&path).unwrap(),
            // Only comments: the code of this file names the flag itself.
            Some("rs") => std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .map(|line| {
                    if line.trim_start().starts_with("//") {
                        line
                    } else {
                        ""
                    }
                })
                .collect::<Vec<_>>()
                .join("\n"),
            _ => continue,
        };
        found.push((path, text));
    }
}

/// Every command in the repository's texts that names a test binary.
fn commands() -> Vec<Named> {
    let mut found = Vec::new();
    texts(&repo(), &mut found);
    let root = repo();
    found
        .iter()
        .flat_map(|(path, text)| {
            let shown = path
                .strip_prefix(&root)
                .unwrap_or(path)
                .display()
                .to_string();
            text.lines()
                .enumerate()
                .filter(|(_, line)| line.contains("--test "))
                .filter_map(move |(i, line)| commands_in(format!("{shown}:{}", i + 1), line))
        })
        .collect()
}

/// Why `named` names nothing that exists, if it does not.
fn missing(named: &Named) -> Option<String> {
    let tests = repo().join(&named.krate).join("tests");
    if named.krate.is_empty() || !repo().join(&named.krate).join("Cargo.toml").exists() {
        return Some(format!(
            "{}: no crate {:?} (give -p)",
            named.at, named.krate
        ));
    }
    let single = tests.join(format!("{}.rs", named.binary));
    let dir = tests.join(&named.binary);
    if !single.exists() && !dir.join("main.rs").exists() {
        return Some(format!(
            "{}: {} has no test binary {:?}",
            named.at, named.krate, named.binary
        ));
    }
    named
        .modules
        .iter()
        .find(|m| !dir.join(format!("{m}.rs")).exists() && !dir.join(m).join("mod.rs").exists())
        .map(|m| {
            format!(
                "{}: {}'s binary {} has no module {m}",
                named.at, named.krate, named.binary
            )
        })
}

#[test]
fn every_command_and_nextest_filter_names_a_test_binary_and_module_that_exist() {
    let commands = commands();
    let filters = nextest_filters();
    let wrong: Vec<String> = commands
        .iter()
        .chain(&filters)
        .filter_map(missing)
        .collect();
    assert_all_good("stale test commands", &wrong, commands.len(), 5);
    // Module filters among them, and nextest's for the cluster test: a
    // parser that finds none checks nothing.
    assert!(
        commands.iter().any(|c| !c.modules.is_empty()),
        "no module filter among {commands:?}"
    );
    assert!(
        filters.iter().any(|f| f.modules == ["cluster"]),
        "nextest.toml's filters: {filters:?}"
    );
}

#[test]
fn a_command_is_read_up_to_the_end_of_its_code_span() {
    let line = "By hand: `cargo test -p system-tests --test system e2e:: -- --nocapture`, \
                or see `system_tests::Stack`.";
    let named = commands_in("x:1".to_owned(), line).unwrap();
    assert_eq!(named.krate, "system-tests");
    assert_eq!(named.binary, "system");
    assert_eq!(named.modules, ["e2e"]);
    assert!(commands_in("x:2".to_owned(), "cargo test --workspace").is_none());
}
