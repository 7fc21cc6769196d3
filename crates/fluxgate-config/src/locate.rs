//! Lines of keys: `breakers.payment_api.retry.jitter` → line 14, so that an error found
//! after parsing (a bad duration, a rule's range, an unknown tracker) still names its
//! line. TOML from the parser's own spans; YAML from a scan of block mappings (the serde
//! YAML crates do not expose spans of values that parsed), which finds keys written in
//! the usual block style and in one-line flow mappings (`{ type: count, size: 5 }`).

use std::collections::BTreeMap;

/// Key paths and the lines they start on.
#[derive(Debug, Clone, Default)]
pub(crate) struct Lines(BTreeMap<Vec<String>, usize>);

pub(crate) fn line_of(src: &str, offset: usize) -> usize {
    let end = offset.min(src.len());
    src.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

impl Lines {
    /// The line of `path`, or of its longest prefix that was written.
    pub(crate) fn find(&self, path: &[&str]) -> Option<usize> {
        let mut path: Vec<String> = path.iter().map(|s| (*s).to_owned()).collect();
        while !path.is_empty() {
            if let Some(&line) = self.0.get(&path) {
                return Some(line);
            }
            path.pop();
        }
        None
    }

    pub(crate) fn toml(src: &str) -> Lines {
        let mut lines = Lines::default();
        if let Ok(root) = toml::de::DeTable::parse(src) {
            lines.walk_toml(src, &mut Vec::new(), root.get_ref());
        }
        lines
    }

    fn walk_toml(&mut self, src: &str, path: &mut Vec<String>, table: &toml::de::DeTable<'_>) {
        for (key, value) in table.iter() {
            path.push(key.get_ref().to_string());
            let line = line_of(src, key.span().start);
            // A table opened by several headers keeps its first line.
            self.0.entry(path.clone()).or_insert(line);
            if let toml::de::DeValue::Table(t) = value.get_ref() {
                self.walk_toml(src, path, t);
            }
            path.pop();
        }
    }

    pub(crate) fn yaml(src: &str) -> Lines {
        let mut lines = Lines::default();
        yaml_keys(src, |path, line| {
            lines.0.entry(path.to_vec()).or_insert(line);
        });
        lines
    }

    /// The line where a key directly under `parent` is written a second time (the first
    /// such key in the file), if the scan finds one.
    pub(crate) fn yaml_repeated(src: &str, parent: &[&str]) -> Option<usize> {
        let mut seen = std::collections::BTreeSet::new();
        let mut found = None;
        yaml_keys(src, |path, line| {
            if found.is_none()
                && path.len() == parent.len() + 1
                && path.iter().zip(parent).all(|(a, b)| a == b)
                && !seen.insert(path.to_vec())
            {
                found = Some(line);
            }
        });
        found
    }
}

/// Every key of a YAML text's block mappings (and of one-line flow mappings), in the
/// order written, with its path and line.
fn yaml_keys(src: &str, mut visit: impl FnMut(&[String], usize)) {
    // (indent, key) of the mappings the current line is nested in.
    let mut stack: Vec<(usize, String)> = Vec::new();
    for (n, raw) in src.lines().enumerate() {
        let line = n + 1;
        let text = strip_comment(raw);
        let trimmed = text.trim_start();
        if trimmed.is_empty() || trimmed.starts_with("---") || trimmed.starts_with("- ") {
            continue;
        }
        let indent = text.len() - trimmed.len();
        let Some((key, rest)) = split_key(trimmed) else {
            continue;
        };
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        stack.push((indent, key));
        let mut path: Vec<String> = stack.iter().map(|(_, k)| k.clone()).collect();
        visit(&path, line);
        let rest = rest.trim();
        if let Some(inner) = rest.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
            for part in inner.split(',') {
                if let Some((k, _)) = split_key(part.trim()) {
                    path.push(k);
                    visit(&path, line);
                    path.pop();
                }
            }
        }
    }
}

fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if prev.is_whitespace() => return &line[..i],
            _ => {}
        }
        prev = c;
    }
    line
}

/// `key: rest` → (key without quotes, rest).
fn split_key(text: &str) -> Option<(String, &str)> {
    let (key, rest) = if let Some(q) = text.chars().next().filter(|c| matches!(c, '"' | '\'')) {
        let end = text[1..].find(q)? + 1;
        let rest = text[end + 1..].trim_start().strip_prefix(':')?;
        (text[1..end].to_owned(), rest)
    } else {
        let colon = text
            .find(": ")
            .or_else(|| text.strip_suffix(':').map(str::len))?;
        (text[..colon].trim().to_owned(), &text[colon + 1..])
    };
    (!key.is_empty()).then_some((key, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_keys_have_their_lines() {
        let src = "[defaults]\nwindow = { type = \"count\", size = 5 }\n\n[breakers.a]\ntripper = \"x\"\n[breakers.a.retry]\ntype = \"never\"\n";
        let l = Lines::toml(src);
        assert_eq!(l.find(&["defaults", "window", "size"]), Some(2));
        assert_eq!(l.find(&["breakers", "a", "tripper"]), Some(5));
        assert_eq!(l.find(&["breakers", "a", "retry", "type"]), Some(7));
        assert_eq!(l.find(&["breakers", "a", "permit"]), Some(4));
    }

    #[test]
    fn yaml_keys_have_their_lines() {
        let src = "defaults:\n  window: { type: count, size: 5 }\n# c\nbreakers:\n  a:\n    tripper: \"x # y\"  # comment\n    retry:\n      type: never\n  \"b\":\n    state: disabled\n";
        let l = Lines::yaml(src);
        assert_eq!(l.find(&["defaults", "window", "size"]), Some(2));
        assert_eq!(l.find(&["breakers", "a", "tripper"]), Some(6));
        assert_eq!(l.find(&["breakers", "a", "retry", "type"]), Some(8));
        assert_eq!(l.find(&["breakers", "b", "state"]), Some(10));
    }

    #[test]
    fn a_repeated_yaml_key_has_its_second_line() {
        let src = "breakers:\n  a:\n    state: closed\n  b: {}\n  # a:\n  'a':\n  b:\n";
        assert_eq!(Lines::yaml_repeated(src, &["breakers"]), Some(6));
        assert_eq!(Lines::yaml_repeated(src, &["defaults"]), None);
        assert_eq!(
            Lines::yaml_repeated("breakers: { a: {}, a: {} }\n", &["breakers"]),
            Some(1)
        );
        assert_eq!(
            Lines::yaml_repeated("breakers:\n  a:\n    a: 1\n", &["breakers"]),
            None
        );
    }
}
