//! Keeps the README, ARCHITECTURE.md and `docs/` true to the tree they
//! describe: every relative link resolves to a file (an `#anchor` to one of
//! its headings), every `scripts/...` path they name exists and the README
//! names every script, the README stays a front page that opens with the two
//! set-up commands, and every setting they name (`section.key` or
//! `BAYES__SECTION__KEY`) is in `config/default.toml`, which in turn has no
//! setting the operations guide leaves out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use platform::secret_files::FILE_SUFFIX;
use platform::settings::{ENV_PREFIX, ENV_SEPARATOR};

/// The README's budget: a front page, not a manual (STYLE.md aims at 60-200).
const README_MAX_LINES: usize = 250;

/// The two commands the README opens with: the whole pipeline, every test.
const SET_UP_COMMANDS: [&str; 2] = ["scripts/dev.sh", "scripts/test.sh"];

/// Where every setting is listed, with its variable and default.
const SETTINGS_GUIDE: &str = "docs/operations.md";

pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A Markdown file of the documentation, by its path from the repository root.
#[derive(Debug)]
struct Doc {
    path: PathBuf,
    text: String,
}

impl Doc {
    fn load(path: impl Into<PathBuf>) -> Doc {
        let path = path.into();
        let text = read(&path);
        Doc { path, text }
    }

    /// `file:line` for a byte offset into the text, for failure messages.
    fn at(&self, offset: usize) -> String {
        let line = self.text[..offset].matches('\n').count() + 1;
        format!("{}:{line}", self.path.display())
    }
}

/// Fails listing every `wrong` place under `what`, and when fewer than
/// `at_least` were checked: a parser that finds nothing checks nothing.
pub(crate) fn assert_all_good(what: &str, wrong: &[String], checked: usize, at_least: usize) {
    assert!(wrong.is_empty(), "{what}:\n{}", wrong.join("\n"));
    assert!(checked >= at_least, "{what}: only {checked} checked");
}

/// README.md, ARCHITECTURE.md and every `docs/*.md`.
fn docs() -> Vec<Doc> {
    let mut guides: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .filter(|name| Path::new(name).extension().is_some_and(|e| e == "md"))
        .map(|name| Path::new("docs").join(name))
        .collect();
    guides.sort();
    assert!(guides.len() >= 5, "docs/ holds only {guides:?}");
    ["README.md", "ARCHITECTURE.md"]
        .into_iter()
        .map(PathBuf::from)
        .chain(guides)
        .map(Doc::load)
        .collect()
}

/// The text with every fenced code block blanked (the fence lines too), so
/// offsets and line numbers stay those of the file.
fn without_fences(text: &str) -> String {
    let mut in_fence = false;
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let fence = line.trim_start().starts_with("```");
        if fence || in_fence {
            out.extend(line.chars().map(|c| if c == '\n' { '\n' } else { ' ' }));
        } else {
            out.push_str(line);
        }
        if fence {
            in_fence = !in_fence;
        }
    }
    out
}

/// The byte ranges of a text's paragraphs: runs of lines between blank ones.
fn paragraphs(text: &str) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    let mut start = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim().is_empty() {
            if let Some(from) = start.take() {
                ranges.push((from, offset));
            }
        } else if start.is_none() {
            start = Some(offset);
        }
        offset += line.len();
    }
    if let Some(from) = start {
        ranges.push((from, offset));
    }
    ranges
}

/// Prose (fences already blanked) split into the code spans it quotes, each
/// with its offset, and the prose around them with the spans blanked. A span
/// opens with a run of n backticks and closes at the next run of exactly n
/// in the same paragraph, as CommonMark has it: a span may hold a backtick
/// or cross a line break, and a stray backtick stays in its paragraph.
fn code_spans(prose: &str) -> (String, Vec<(usize, String)>) {
    let mut outside = prose.to_owned().into_bytes();
    let mut spans = Vec::new();
    for (from, to) in paragraphs(prose) {
        let bytes = &prose.as_bytes()[..to];
        let run_at = |i: usize| bytes[i..].iter().take_while(|&&b| b == b'`').count();
        let mut i = from;
        while i < to {
            if bytes[i] != b'`' {
                i += 1;
                continue;
            }
            let n = run_at(i);
            let mut j = i + n;
            let close = loop {
                match bytes[j..].iter().position(|&b| b == b'`') {
                    None => break None,
                    Some(k) if run_at(j + k) == n => break Some(j + k),
                    Some(k) => j += k + run_at(j + k),
                }
            };
            let Some(close) = close else {
                i += n;
                continue;
            };
            let content = prose[i + n..close].replace('\n', " ");
            spans.push((i + n, content.trim().to_owned()));
            for b in &mut outside[i..close + n] {
                if *b != b'\n' {
                    *b = b' ';
                }
            }
            i = close + n;
        }
    }
    (String::from_utf8(outside).unwrap(), spans)
}

/// The anchor GitHub gives a heading: lower case, letters, digits, `-` and
/// `_` kept, spaces made `-`, everything else (backticks, punctuation) dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

/// Every anchor of a Markdown text's headings (outside code blocks); a
/// heading met again gets `-1`, `-2`, ... as on GitHub.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut anchors = BTreeSet::new();
    for line in without_fences(text).lines() {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        let Some(heading) = line[hashes..].strip_prefix(' ') else {
            continue;
        };
        if !(1..=6).contains(&hashes) {
            continue;
        }
        let base = anchor(heading);
        let count = seen.entry(base.clone()).or_default();
        anchors.insert(match *count {
            0 => base.clone(),
            n => format!("{base}-{n}"),
        });
        *count += 1;
    }
    anchors
}

/// The targets of a doc's links and images (`[text](target)`,
/// `![alt](target)`, `[label]: target`), outside code, with their offsets.
fn links(doc: &Doc) -> Vec<(usize, String)> {
    let (prose, _) = code_spans(&without_fences(&doc.text));
    let mut links = Vec::new();
    for (start, _) in prose.match_indices("](") {
        let target_at = start + 2;
        let target: String = prose[target_at..]
            .chars()
            .take_while(|&c| c != ')' && !c.is_whitespace())
            .collect();
        links.push((target_at, target));
    }
    let mut offset = 0;
    for line in prose.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if let Some((label, rest)) = trimmed.split_once("]:") {
            if label.starts_with('[') && !label.contains(']') {
                let target = rest.split_whitespace().next().unwrap_or_default();
                links.push((offset + line.len() - rest.len(), target.to_owned()));
            }
        }
        offset += line.len();
    }
    links
}

fn is_external(target: &str) -> bool {
    ["http://", "https://", "mailto:"]
        .iter()
        .any(|scheme| target.starts_with(scheme))
}

#[test]
fn every_relative_link_and_anchor_in_the_docs_resolves() {
    let root = repo().canonicalize().unwrap();
    let mut broken = Vec::new();
    let mut checked = 0;
    for doc in docs() {
        for (offset, target) in links(&doc) {
            if is_external(&target) {
                continue;
            }
            let (path, fragment) = target.split_once('#').unwrap_or((&target, ""));
            let file = if path.is_empty() {
                doc.path.clone()
            } else {
                doc.path.parent().unwrap().join(path)
            };
            let Ok(resolved) = repo().join(&file).canonicalize() else {
                broken.push(format!("{}: {target}: no such file", doc.at(offset)));
                continue;
            };
            if !resolved.starts_with(&root) {
                broken.push(format!(
                    "{}: {target}: outside the repository",
                    doc.at(offset)
                ));
                continue;
            }
            if !fragment.is_empty() {
                let headings = match resolved.extension().and_then(|e| e.to_str()) {
                    Some("md") => anchors(&std::fs::read_to_string(&resolved).unwrap()),
                    _ => BTreeSet::new(),
                };
                if !headings.contains(fragment) {
                    broken.push(format!(
                        "{}: {target}: {} has no heading #{fragment}",
                        doc.at(offset),
                        file.display()
                    ));
                }
            }
            checked += 1;
        }
    }
    assert_all_good("broken links", &broken, checked, 50);
}

/// Every `scripts/...` path a text names (in prose, code spans and code
/// blocks alike: commands must run as written), with its offset.
fn script_paths(text: &str) -> Vec<(usize, String)> {
    let is_path_char = |c: char| c.is_ascii_alphanumeric() || "_./-".contains(c);
    text.match_indices("scripts/")
        .filter(|(at, _)| !text[..*at].ends_with(is_path_char))
        .map(|(at, _)| {
            let path: String = text[at..]
                .chars()
                .take_while(|&c| is_path_char(c))
                .collect();
            (at, path.trim_end_matches('.').to_owned())
        })
        .collect()
}

#[test]
fn every_script_the_docs_name_exists() {
    let mut missing = Vec::new();
    let mut checked = 0;
    for doc in docs() {
        for (offset, path) in script_paths(&doc.text) {
            if !repo().join(&path).exists() {
                missing.push(format!("{}: {path}", doc.at(offset)));
            }
            checked += 1;
        }
    }
    assert_all_good("no such script", &missing, checked, 50);
}

#[test]
fn the_readme_names_every_script() {
    let named: BTreeSet<String> = script_paths(&read(Path::new("README.md")))
        .into_iter()
        .map(|(_, path)| path)
        .collect();
    let mut unnamed = Vec::new();
    for entry in std::fs::read_dir(repo().join("scripts")).unwrap() {
        let entry = entry.unwrap();
        let path = format!("scripts/{}", entry.file_name().to_string_lossy());
        let is_named = if entry.file_type().unwrap().is_dir() {
            named.iter().any(|n| n.starts_with(&format!("{path}/")))
        } else {
            named.contains(&path)
        };
        if !is_named {
            unnamed.push(path);
        }
    }
    unnamed.sort();
    assert!(
        unnamed.is_empty(),
        "README.md's layout does not name {unnamed:?}"
    );
}

#[test]
fn the_readme_is_a_front_page_that_opens_with_the_two_set_up_commands() {
    let readme = read(Path::new("README.md"));
    let lines = readme.lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines; at most {README_MAX_LINES} (the rest belongs in docs/)"
    );
    let mut before_block = Vec::new();
    let mut block = None;
    let mut all = readme.lines();
    while let Some(line) = all.next() {
        if line.trim_start().starts_with("```") {
            block = Some(
                all.by_ref()
                    .take_while(|l| !l.trim_start().starts_with("```"))
                    .filter(|l| !l.trim().is_empty())
                    .collect::<Vec<_>>(),
            );
            break;
        }
        before_block.push(line);
    }
    let block = block.expect("README.md has no code block");
    assert!(
        before_block.first().is_some_and(|l| l.starts_with("# ")),
        "README.md does not start with its title"
    );
    assert!(
        !before_block.iter().any(|l| l.starts_with("##")),
        "README.md has a section before its set-up commands"
    );
    let commands: Vec<&str> = block
        .iter()
        .map(|l| l.split_whitespace().next().unwrap_or_default())
        .collect();
    assert_eq!(
        commands, SET_UP_COMMANDS,
        "README.md's first code block must be exactly the two set-up commands: {block:#?}"
    );
}

/// `config/default.toml` as its sections and their keys: `[section]`
/// headers, and `key = value` lines under them, also commented out (a
/// setting without a default is shown that way: `# bootstrap_admin_key = "..."`).
/// A section without keys (`[kafka.librdkafka]`) passes any option through.
fn default_settings() -> BTreeMap<String, BTreeSet<String>> {
    let mut sections: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut section = None;
    for line in read(Path::new("config/default.toml")).lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            sections.entry(name.to_owned()).or_default();
            section = Some(name.to_owned());
            continue;
        }
        let Some(section) = &section else { continue };
        let setting = line.trim_start_matches('#').trim_start();
        let key: String = setting
            .chars()
            .take_while(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            .collect();
        if key.starts_with(|c: char| c.is_ascii_lowercase())
            && setting[key.len()..].trim_start().starts_with('=')
        {
            sections.get_mut(section).unwrap().insert(key);
        }
    }
    sections
}

/// Whether a setting's path (`["consumer", "batch_size"]`) names a setting
/// of `config/default.toml`, a section of it, or an option of a pass-through
/// section.
fn names_a_setting(settings: &BTreeMap<String, BTreeSet<String>>, path: &[String]) -> bool {
    (1..=path.len()).rev().any(|i| {
        let Some(keys) = settings.get(&path[..i].join(".")) else {
            return false;
        };
        match &path[i..] {
            [] => true,
            _ if keys.is_empty() => true,
            [key] => keys.contains(key),
            _ => false,
        }
    })
}

/// Every `BAYES__SECTION__KEY` a text names, as its lower-case path; a
/// placeholder (`BAYES__KAFKA__LIBRDKAFKA__<OPTION>`) as the part before it.
fn environment_settings(text: &str) -> Vec<(usize, String, Vec<String>)> {
    let prefix = format!("{ENV_PREFIX}{ENV_SEPARATOR}");
    let is_name_char = |c: char| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_';
    text.match_indices(&prefix)
        .filter(|(at, _)| !text[..*at].ends_with(is_name_char))
        .filter_map(|(at, _)| {
            let name: String = text[at..]
                .chars()
                .take_while(|&c| is_name_char(c))
                .collect();
            // `..._FILE` reads the setting from a file (platform::secret_files).
            let setting = name.strip_suffix(FILE_SUFFIX).unwrap_or(&name);
            let path: Vec<String> = setting[prefix.len()..]
                .split(ENV_SEPARATOR)
                .filter(|segment| !segment.is_empty())
                .map(str::to_lowercase)
                .collect();
            (!path.is_empty()).then_some((at, name, path))
        })
        .collect()
}

/// What a file name ends with: a code span such as `kafka.rs` is no setting.
const FILE_EXTENSIONS: [&str; 10] = [
    "rs", "toml", "sh", "py", "md", "json", "yaml", "xml", "log", "csv",
];

/// Every `section.key` a text quotes in a code span whose first part is a
/// section of the settings (`consumer.batch_size`, `kafka.librdkafka.<option>`,
/// `consumer.on_offset_gap = "earliest"`), as its path. A span that is a
/// file name (`kafka.rs`) or no path of names (`consumer.log.1`) is skipped.
fn dotted_settings(text: &str, sections: &BTreeSet<&str>) -> Vec<(usize, String, Vec<String>)> {
    let (_, spans) = code_spans(&without_fences(text));
    spans
        .into_iter()
        .filter_map(|(at, span)| {
            let name: String = span
                .chars()
                .take_while(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.".contains(c))
                .collect();
            let path: Vec<String> = name
                .trim_end_matches('.')
                .split('.')
                .map(str::to_owned)
                .collect();
            let is_path = path.len() >= 2
                && sections.contains(path[0].as_str())
                && path
                    .iter()
                    .all(|p| p.starts_with(|c: char| c.is_ascii_lowercase()))
                && !FILE_EXTENSIONS.contains(&path[path.len() - 1].as_str());
            is_path.then_some((at, span, path))
        })
        .collect()
}

#[test]
fn every_setting_the_docs_name_is_in_the_default_configuration() {
    let settings = default_settings();
    let sections: BTreeSet<&str> = settings
        .keys()
        .map(|s| s.split('.').next().unwrap())
        .collect();
    assert!(sections.len() >= 5, "config/default.toml: {settings:?}");
    let mut unknown = Vec::new();
    let mut checked = 0;
    for doc in docs() {
        let named = environment_settings(&doc.text)
            .into_iter()
            .chain(dotted_settings(&doc.text, &sections));
        for (offset, name, path) in named {
            if !names_a_setting(&settings, &path) {
                unknown.push(format!("{}: {name}", doc.at(offset)));
            }
            checked += 1;
        }
    }
    assert_all_good(
        "settings config/default.toml does not have",
        &unknown,
        checked,
        100,
    );
}

#[test]
fn every_setting_of_the_default_configuration_is_in_the_settings_guide() {
    let guide = read(Path::new(SETTINGS_GUIDE));
    let mut undocumented = Vec::new();
    for (section, keys) in default_settings() {
        let names: Vec<String> = match keys.is_empty() {
            true => vec![section.clone()],
            false => keys.iter().map(|key| format!("{section}.{key}")).collect(),
        };
        for name in names {
            if !guide.contains(&format!("`{name}")) {
                undocumented.push(name);
            }
        }
    }
    assert!(
        undocumented.is_empty(),
        "{SETTINGS_GUIDE} does not document {undocumented:?}"
    );
}

// The parsing the checks above rely on, on examples.

#[test]
fn anchors_are_made_as_github_makes_them() {
    let text = "# Title\n## Producer (port 8000)\n### `domain/`\n```sh\n# not a heading\n```\n\
                ## How exactly-once works\n## Tests\n## Tests\n#hashtag\n";
    let expected = [
        "title",
        "producer-port-8000",
        "domain",
        "how-exactly-once-works",
        "tests",
        "tests-1",
    ];
    assert_eq!(
        anchors(text),
        expected
            .iter()
            .map(|s| (*s).to_owned())
            .collect::<BTreeSet<_>>()
    );
}

#[test]
fn links_settings_and_scripts_in_code_are_told_apart_from_prose() {
    let doc = Doc {
        path: PathBuf::from("docs/example.md"),
        text: "See [a](api.md#x) and ![b](b.png), not `[c](c.md)`.\n\
               ```sh\n[d](d.md) scripts/dev.sh --embedded\nBAYES__CONSUMER__PORT=1\n```\n\
               ``a `consumer.batch_size` quoted``, `kafka.rs`, `consumer.log.1`,\n\
               `kafka.librdkafka.<option>`, `BAYES__<SECTION>__<KEY>`, `$ROOT/scripts/x`,\n\
               `message.max.bytes` and scripts/fuzz.sh.\n[e]: e.md\n"
            .to_owned(),
    };
    let targets: Vec<String> = links(&doc).into_iter().map(|(_, t)| t).collect();
    assert_eq!(targets, ["api.md#x", "b.png", "e.md"]);

    let scripts: Vec<String> = script_paths(&doc.text)
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    assert_eq!(scripts, ["scripts/dev.sh", "scripts/fuzz.sh"]);

    let environment: Vec<Vec<String>> = environment_settings(&doc.text)
        .into_iter()
        .map(|(_, _, path)| path)
        .collect();
    assert_eq!(environment, [["consumer", "port"]]);

    let sections = BTreeSet::from(["consumer", "kafka"]);
    let dotted: Vec<String> = dotted_settings(&doc.text, &sections)
        .into_iter()
        .map(|(_, _, path)| path.join("."))
        .collect();
    assert_eq!(dotted, ["kafka.librdkafka"]);

    let settings = BTreeMap::from([
        (
            "consumer".to_owned(),
            BTreeSet::from(["batch_size".to_owned()]),
        ),
        ("kafka.librdkafka".to_owned(), BTreeSet::new()),
    ]);
    let path = |p: &str| p.split('.').map(str::to_owned).collect::<Vec<_>>();
    assert!(names_a_setting(&settings, &path("consumer.batch_size")));
    assert!(names_a_setting(
        &settings,
        &path("kafka.librdkafka.socket_timeout_ms")
    ));
    assert!(!names_a_setting(&settings, &path("consumer.port")));
    assert!(!names_a_setting(&settings, &path("producer.port")));
}
