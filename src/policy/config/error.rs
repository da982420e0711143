//! Configuration errors: where (file, line, column), what, and what to do.
//!
//! Every error renders as `file:line:column: message — what to do`, the
//! shape editors and compilers use, so a terminal or an IDE can jump to it.
//! Errors from the TOML layer (syntax, unknown keys, wrong types) are turned
//! into the same shape; unknown keys and enum values get a "did you mean"
//! suggestion from a small edit-distance search over the valid names.

use core::fmt;
use core::ops::Range;

/// One problem found in a configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// File name as given to the loader (only used in messages).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub help: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)?;
        if !self.help.is_empty() {
            write!(f, " — {}", self.help)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// All problems found in one file, in the order of their location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The errors, sorted by location.
    pub fn iter(&self) -> impl Iterator<Item = &ConfigError> {
        self.0.iter()
    }

    /// Number of errors.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there is no error (never the case for a returned `Err`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Collects errors against one source text, turning byte spans into
/// line:column positions.
pub(crate) struct Diag<'a> {
    file: &'a str,
    text: &'a str,
    errors: Vec<(usize, ConfigError)>,
}

impl<'a> Diag<'a> {
    pub(crate) fn new(file: &'a str, text: &'a str) -> Self {
        Diag { file, text, errors: Vec::new() }
    }

    /// Builds an error at byte offset `at` (clamped into the text).
    pub(crate) fn make(&self, at: usize, message: impl Into<String>, help: impl Into<String>) -> ConfigError {
        let (line, column) = line_col(self.text, at);
        ConfigError { file: self.file.to_string(), line, column, message: message.into(), help: help.into() }
    }

    /// The source text.
    pub(crate) fn text(&self) -> &'a str {
        self.text
    }

    /// Records an error at the start of `span`.
    pub(crate) fn err(&mut self, span: Range<usize>, message: impl Into<String>, help: impl Into<String>) {
        let e = self.make(span.start, message, help);
        self.errors.push((span.start, e));
    }

    /// True if any error was recorded.
    pub(crate) fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// The recorded errors sorted by position (stable for equal positions).
    pub(crate) fn finish(mut self) -> ConfigErrors {
        self.errors.sort_by_key(|(at, _)| *at);
        ConfigErrors(self.errors.into_iter().map(|(_, e)| e).collect())
    }

    /// Converts an error from the TOML deserializer.
    pub(crate) fn toml_error(&self, e: &toml::de::Error) -> ConfigError {
        let at = e.span().map(|s| s.start).unwrap_or(0);
        let (message, help) = explain_toml(e.message());
        self.make(at, message, help)
    }
}

/// 1-based line and column (in characters) of byte offset `at`.
pub(crate) fn line_col(text: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// The names quoted in backticks in a serde message, in order.
fn backticked(msg: &str) -> Vec<&str> {
    msg.split('`').skip(1).step_by(2).collect()
}

/// Rewrites a deserializer message as (message, what to do).
fn explain_toml(msg: &str) -> (String, String) {
    let first_line = msg.lines().next().unwrap_or(msg).trim();
    for (prefix, what) in [("unknown field", "key"), ("unknown variant", "value")] {
        if first_line.starts_with(prefix) {
            let names = backticked(first_line);
            let Some((bad, valid)) = names.split_first() else { break };
            let message = format!("unknown {what} `{bad}`");
            let list = valid.join(", ");
            let help = match suggest(bad, valid.iter().copied()) {
                Some(s) => format!("did you mean `{s}`? (valid {what}s here: {list})"),
                None if valid.is_empty() => format!("remove this {what}"),
                None => format!("use one of: {list}"),
            };
            return (message, help);
        }
    }
    if let Some(rest) = first_line.strip_prefix("missing field ") {
        let name = rest.trim_matches('`');
        return (format!("missing required key `{name}`"), format!("add `{name} = ...` to this table"));
    }
    if first_line.starts_with("invalid type") || first_line.starts_with("invalid value") {
        let expected = first_line.rsplit_once("expected ").map_or("", |(_, e)| e);
        return (first_line.to_string(), format!("write {}", friendly_expected(expected)));
    }
    if first_line.starts_with("duplicate key") {
        return (first_line.to_string(), "each key may appear once per table; remove one".to_string());
    }
    (first_line.to_string(), "fix the TOML syntax here (see docs/CONFIG.md)".to_string())
}

/// Turns serde's type names into words a user can act on.
fn friendly_expected(expected: &str) -> String {
    let e = expected.trim();
    let word = match e {
        "u8" | "u16" | "u32" | "u64" | "i64" | "usize" => "a whole number",
        "a boolean" | "bool" => "true or false",
        "a string" => "a quoted string",
        "a sequence" => "a list like [\"a\", \"b\"]",
        _ => return if e.is_empty() { "a value of the right type".to_string() } else { e.to_string() },
    };
    word.to_string()
}

/// Edit distance with adjacent transpositions (optimal string alignment):
/// insert, delete, substitute and swap two neighbours each cost 1, so the
/// common typo `nmae` is one step from `name`.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for (i, row) in d.chunks_mut(w).enumerate() {
        row[0] = i;
    }
    for (j, cell) in d.iter_mut().take(w).enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1).min(d[i * w + j - 1] + 1).min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

/// The closest candidate within a third of the word's length (at least 1,
/// at most 3 edits), if any.
pub(crate) fn suggest<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    let limit = (word.chars().count() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| (edit_distance(&word.to_ascii_lowercase(), c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_known_values() {
        // Classic textbook pairs, computed by hand.
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("flaw", "lawn"), 2);
        assert_eq!(edit_distance("same", "same"), 0);
        assert_eq!(edit_distance("nmae", "name"), 1);
        assert_eq!(edit_distance("ab", "ba"), 1);
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("gatways", ["name", "gateways", "children"]), Some("gateways"));
        assert_eq!(suggest("zzzzzz", ["name", "gateways"]), None);
        assert_eq!(suggest("Name", ["name"]), Some("name"));
    }

    #[test]
    fn positions() {
        let t = "a = 1\nbé = 2\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 6), (2, 1));
        // 'é' is two bytes: byte 9 is the space after it, column 3.
        assert_eq!(line_col(t, 9), (2, 3));
        assert_eq!(line_col(t, 1000), (3, 1));
    }

    #[test]
    fn unknown_field_message() {
        let (m, h) = explain_toml("unknown field `nmae`, expected one of `name`, `weight`");
        assert_eq!(m, "unknown key `nmae`");
        assert!(h.starts_with("did you mean `name`?"), "{h}");
    }
}
