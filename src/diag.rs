//! Diagnostics for people: every problem names the file, the line where there is one, what
//! is wrong and what to do. Rendered compiler-style (annotate-snippets) for terminals and as
//! one JSON object per problem for `--json`. This module formats; it never prints.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use annotate_snippets::{AnnotationKind, Group, Level, Origin, Renderer, Snippet};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// The source line a diagnostic points into, with the span inside that line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLine {
    pub text: String,
    /// Byte range inside `text`; may be empty (points at a position).
    pub span: Range<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    /// 1-based line number, where the problem has one.
    pub line: Option<usize>,
    /// 1-based column in characters.
    pub column: Option<usize>,
    pub message: String,
    /// What to do about it.
    pub help: Option<String>,
    pub source: Option<SourceLine>,
    /// Further problems of the same file: a file reports all its errors at once. Shown after
    /// this one; `check --json` gives each its own object.
    pub also: Vec<Diagnostic>,
    /// What happens next without the user doing anything else, for notes beside the file
    /// (e.g. "this note goes away when you answer with `cadenced retry` or `resolve`");
    /// `None` means "fix the file and cadenced checks it again".
    pub next: Option<String>,
}

impl Diagnostic {
    pub fn error(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            file: file.into(),
            line: None,
            column: None,
            message: message.into(),
            help: None,
            source: None,
            also: Vec::new(),
            next: None,
        }
    }

    pub fn warning(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(file, message)
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds further problems of the same file.
    pub fn with_also(mut self, more: impl IntoIterator<Item = Diagnostic>) -> Self {
        self.also.extend(more);
        self
    }

    /// Says what happens next (see [`Diagnostic::next`]).
    pub fn with_next(mut self, next: impl Into<String>) -> Self {
        self.next = Some(next.into());
        self
    }

    /// This problem and the further ones of the same file, in order.
    pub fn all(&self) -> impl Iterator<Item = &Diagnostic> {
        std::iter::once(self).chain(self.also.iter().flat_map(|d| d.all_boxed()))
    }

    fn all_boxed(&self) -> Box<dyn Iterator<Item = &Diagnostic> + '_> {
        Box::new(self.all())
    }

    /// How many problems this is (itself and `also`).
    pub fn count(&self) -> usize {
        self.all().count()
    }

    /// Points at a 1-based line without a snippet.
    pub fn at_line(mut self, line: usize) -> Self {
        self.line = Some(line);
        self
    }

    /// Points at `span` (byte offsets) of `text`, the whole content of the file: fills in
    /// the line, the column and the source line for the snippet.
    pub fn at_span(mut self, text: &str, span: Range<usize>) -> Self {
        let start = floor_char_boundary(text, span.start.min(text.len()));
        let end = floor_char_boundary(text, span.end.clamp(start, text.len()));
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let line_text = text[line_start..line_end].trim_end_matches('\r');
        self.line = Some(text[..start].matches('\n').count() + 1);
        self.column = Some(text[line_start..start].chars().count() + 1);
        // A span can start in the `\r` trimmed off the line's end (TOML points at a bare
        // `\r`): keep it inside the shown text.
        let span_start = (start - line_start).min(line_text.len());
        let span_end = (end.min(line_end) - line_start).clamp(span_start, line_text.len());
        self.source = Some(SourceLine {
            text: line_text.to_string(),
            span: span_start..span_end,
        });
        self
    }

    /// Points at the first line of `text` that contains `needle` (a key in a TOML table, say).
    pub fn at_first(self, text: &str, needle: &str) -> Self {
        match text.find(needle) {
            Some(pos) => self.at_span(text, pos..pos + needle.len()),
            None => self,
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `file:line:column`, as far as known.
    pub fn location(&self) -> String {
        let mut s = escaped(&self.file.display().to_string()).into_owned();
        if let Some(line) = self.line {
            s.push_str(&format!(":{line}"));
            if let Some(col) = self.column {
                s.push_str(&format!(":{col}"));
            }
        }
        s
    }

    /// Renders compiler-style; `color` adds ANSI styles (callers decide from the terminal
    /// and `NO_COLOR`).
    pub fn render(&self, color: bool) -> String {
        let level = match self.severity {
            Severity::Error => Level::ERROR,
            Severity::Warning => Level::WARNING,
        };
        let path = escaped(&self.file.display().to_string()).into_owned();
        let title = level.primary_title(self.message.as_str());
        let group = match (&self.source, self.line) {
            (Some(src), Some(line)) => title.element(
                Snippet::source(src.text.as_str())
                    .line_start(line)
                    .path(path.as_str())
                    .annotation(AnnotationKind::Primary.span(src.span.clone())),
            ),
            _ => {
                let mut origin = Origin::path(path.as_str());
                if let Some(line) = self.line {
                    origin = origin.line(line);
                }
                title.element(origin)
            }
        };
        let mut report = vec![group];
        if let Some(help) = &self.help {
            report.push(Group::with_title(
                Level::HELP.secondary_title(help.as_str()),
            ));
        }
        let renderer = if color {
            Renderer::styled()
        } else {
            Renderer::plain()
        };
        let mut out = renderer.render(&report).to_string();
        for more in &self.also {
            out.push('\n');
            out.push_str(&more.render(color));
        }
        out
    }

    /// The JSON shape of `check --json`: one object per problem.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "severity": self.severity,
            "file": self.file.display().to_string(),
            "line": self.line,
            "column": self.column,
            "message": self.message,
            "help": self.help,
        })
    }

    /// Re-roots the file name, e.g. to show it relative to the current directory.
    pub fn relative_to(mut self, base: &Path) -> Self {
        if let Ok(rel) = self.file.strip_prefix(base)
            && !rel.as_os_str().is_empty()
            && base != Path::new("/")
        {
            self.file = rel.to_path_buf();
        }
        self.also = self.also.into_iter().map(|d| d.relative_to(base)).collect();
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{}: {kind}: {}", self.location(), self.message)?;
        if let Some(help) = &self.help {
            write!(f, " (help: {help})")?;
        }
        for more in &self.also {
            write!(f, "; {more}")?;
        }
        Ok(())
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Characters a terminal or a reader of the log acts on instead of showing: control
/// characters (a line break starts a forged log line, an escape sequence rewrites the
/// screen) and the bidirectional overrides and isolates that reorder what follows (a name
/// shown as `gpj.md` that ends in `.jpg`).
pub fn acts_on_display(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `s` with each character that [`acts_on_display`] written as its escape (`\n`,
/// `\u{1b}`): a file name shown in a message as what it is.
pub fn escaped(s: &str) -> Cow<'_, str> {
    if !s.chars().any(acts_on_display) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if acts_on_display(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `word` with its indefinite article, for messages: "an integer", "a string".
pub fn a(word: &str) -> String {
    let article = if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {word}")
}

/// The closest of `candidates` to `word`, if close enough to be a plausible typo. Swapped
/// neighbours count as one edit (`lnik` → `link`).
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let best = candidates
        .into_iter()
        .map(|c| (edit_distance_osa(word, c), c))
        .min_by_key(|(d, _)| *d)?;
    let limit = (word.chars().count().max(best.1.chars().count()) / 3).max(1);
    (best.0 <= limit).then_some(best.1)
}

/// Edits between two words (optimal string alignment: insert, delete, replace, or swap
/// two neighbours), over characters.
pub fn edit_distance_osa(a: &str, b: &str) -> usize {
    strsim::osa_distance(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_on_a_trimmed_carriage_return_is_not_a_panic() {
        // `config::parse("\r")`: TOML points just past the bare `\r` it refuses.
        for (text, span) in [
            ("\r", 1..1),
            ("\r", 0..1),
            ("a\r\nb", 1..2),
            ("x = 1\r", 6..6),
        ] {
            let d = Diagnostic::error("f", "m").at_span(text, span.clone());
            let source = d.source.expect("a source line");
            assert!(source.span.end <= source.text.len(), "{text:?} {span:?}");
        }
    }

    #[test]
    fn span_gives_line_column_and_snippet() {
        let text = "+++\nprority = 1\n+++\nhello";
        let d =
            Diagnostic::error("queue/x/a.md", "unknown key `prority`").at_first(text, "prority");
        assert_eq!(d.line, Some(2));
        assert_eq!(d.column, Some(1));
        assert_eq!(d.location(), "queue/x/a.md:2:1");
        let out = d.with_help("did you mean `priority`?").render(false);
        assert!(out.contains("queue/x/a.md:2:1"), "{out}");
        assert!(out.contains("prority = 1"), "{out}");
        assert!(out.contains("did you mean `priority`?"), "{out}");
    }

    #[test]
    fn column_counts_characters_not_bytes() {
        let text = "冬季 = x";
        let d = Diagnostic::error("f", "m").at_span(text, "冬季 ".len().."冬季 =".len());
        assert_eq!(d.column, Some(4));
    }

    #[test]
    fn suggestions_only_for_plausible_typos() {
        let keys = ["priority", "expires", "media"];
        assert_eq!(did_you_mean("prority", keys), Some("priority"));
        assert_eq!(did_you_mean("expire", keys), Some("expires"));
        assert_eq!(did_you_mean("banana", keys), None);
    }
}
