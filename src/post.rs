//! The post file format: optional TOML front matter between `+++` lines, then the post text.
//!
//! Parsing is pure: bytes in, a [`Post`] or a [`PostError`] out, with the byte span of the
//! offending key or value so callers can show the line. This module must not touch the file
//! system, the clock or any platform rule (text length, `[platform]` keys): media paths are
//! resolved by `queue`, platform fields are checked per platform, times are resolved in the
//! channel's zone by [`PostTime::resolve`] only when a caller has the zone.

use std::borrow::Cow;
use std::ops::Range;
use std::str::FromStr;

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::cadence::day;

/// A parsed post file: front matter and body. Pure data.
#[derive(Debug, Clone, PartialEq)]
pub struct Post {
    pub front: FrontMatter,
    /// The post text (the body, without surrounding blank lines).
    pub body: String,
    /// 1-based line of the file where the body starts.
    pub body_line: usize,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct FrontMatter {
    pub at: Option<PostTime>,
    pub expires: Option<PostTime>,
    pub priority: i64,
    pub media: Vec<MediaRef>,
    pub link: Option<String>,
    pub lang: Option<String>,
    /// The `[platform]` table, checked per platform elsewhere.
    pub platform: toml::Table,
}

/// A time in front matter: a local time (in the channel's zone) or an exact instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostTime {
    Local(DateTime),
    Exact(Timestamp),
}

impl PostTime {
    /// The instant in the channel's zone: a local time inside a spring-forward gap is the
    /// first instant after the gap; one in a repeated hour is its first occurrence.
    ///
    /// [`parse`] only accepts times within [`day::FIRST_YEAR`]..=[`day::LAST_YEAR`], which
    /// every zone maps to an instant; a time built otherwise, outside jiff's range, clamps
    /// to the end of time it lies beyond rather than panicking.
    pub fn resolve(&self, tz: &TimeZone) -> Timestamp {
        match self {
            PostTime::Local(dt) => day::resolve_local(*dt, tz).unwrap_or(if dt.year() > 0 {
                Timestamp::MAX
            } else {
                Timestamp::MIN
            }),
            PostTime::Exact(t) => *t,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRef {
    /// As written in the file: relative to the post file.
    pub path: String,
    /// `None` when absent or blank.
    pub alt: Option<String>,
}

/// Why a post file cannot be read; `span` is a byte range of the file, where known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostError {
    pub message: String,
    pub help: String,
    pub span: Option<Range<usize>>,
    /// Further problems of the same file, in file order: a file reports all its errors at
    /// once, so fixing one does not reveal the next.
    pub also: Vec<PostError>,
}

impl PostError {
    fn new(
        message: impl Into<String>,
        help: impl Into<String>,
        span: Option<Range<usize>>,
    ) -> Self {
        PostError {
            message: message.into(),
            help: help.into(),
            span,
            also: Vec::new(),
        }
    }

    /// The first of `errors` (which must not be empty), carrying the rest in `also`.
    fn all(mut errors: Vec<PostError>) -> PostError {
        let mut first = errors.remove(0);
        first.also.extend(errors);
        first
    }
}

/// The front-matter keys, in the order the SPEC lists them.
pub const KEYS: [&str; 7] = [
    "at", "expires", "priority", "media", "link", "lang", "platform",
];

/// The keys of one `media` entry.
pub const MEDIA_KEYS: [&str; 2] = ["path", "alt"];

const TIME_FORMS: &str = "write a local time in the channel's time zone, like \
    `2026-11-27T09:00` or `2026-11-27T09:00:00`, or an exact time with an offset (RFC 3339), \
    like `2026-11-27T09:00:00+01:00` or `2026-11-27T08:00:00Z`";

const MEDIA_FORM: &str = "write media as a list of tables: `media = [{ path = \"img/sale.jpg\", alt = \"Red sneakers on a shelf\" }]`";

/// How a post's body becomes the text that goes out: a `.md` post is Markdown-aware (see
/// [`crate::markdown`]), a `.txt` post goes out exactly as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Plain,
}

impl Format {
    /// By the file name: `.md` (any case) is Markdown, anything else is plain text.
    pub fn of_path(path: &std::path::Path) -> Format {
        match path.extension() {
            Some(ext) if ext.eq_ignore_ascii_case("md") => Format::Markdown,
            _ => Format::Plain,
        }
    }
}

/// Parses a post file whose body is written in `format`: `body` is then the text that goes
/// out, which the length rules, the near-duplicate check and the adapters all see.
pub fn parse_as(bytes: &[u8], format: Format) -> Result<Post, PostError> {
    let mut post = parse(bytes)?;
    if format == Format::Markdown {
        post.body = crate::markdown::outgoing_text(&post.body);
        // What goes out must be visible too, not only what was written.
        if let Some(e) = invisible_text_error(&post.body, None) {
            return Err(e);
        }
    }
    Ok(post)
}

/// Line ends as editors write them: `\n`, `\r\n`, and the bare `\r` of classic Mac
/// editors and some exports, which neither the `+++` lines nor TOML know: a file written
/// that way was published with its front matter as the text. A bare `\r` becomes `\n`, one
/// byte for one byte, so every offset (error spans, lines) stays an offset of the file.
/// Callers that show a post file's lines read it through this too.
pub fn normalize_line_ends(bytes: &[u8]) -> Cow<'_, [u8]> {
    let bare_cr = |i: usize| bytes[i] == b'\r' && bytes.get(i + 1) != Some(&b'\n');
    if !(0..bytes.len()).any(bare_cr) {
        return Cow::Borrowed(bytes);
    }
    Cow::Owned(
        (0..bytes.len())
            .map(|i| if bare_cr(i) { b'\n' } else { bytes[i] })
            .collect(),
    )
}

/// Parses a post file from its bytes; the body exactly as written (see [`parse_as`]).
pub fn parse(bytes: &[u8]) -> Result<Post, PostError> {
    let bytes = normalize_line_ends(bytes);
    let text = decode(&bytes)?;
    // A byte-order mark is invisible in editors; skipping it keeps `+++` on "the first line"
    // as the user sees it. Offsets stay offsets of the file.
    let start = if text.starts_with('\u{feff}') { 3 } else { 0 };
    let (front_range, body_start) = split_front_matter(text, start)?;
    let front = match front_range {
        Some(range) => parse_front(text, range)?,
        None => FrontMatter::default(),
    };

    // Surrounding blank lines are not part of the post; everything between is kept exactly.
    let mut first = body_start;
    for line in text[body_start..].split_inclusive('\n') {
        if !line.trim().is_empty() {
            break;
        }
        first += line.len();
    }
    let body = text[first..].trim_end().to_string();
    let body_line = line_of(text, first);
    if body.is_empty() && front.media.is_empty() {
        return Err(PostError::new(
            "the post has no text and no media",
            "write the post text after the closing `+++` line (or add `media`)",
            front_range_end_span(text, body_start),
        ));
    }
    let body_span = first..first + body.len();
    if let Some(e) = invisible_text_error(&body, Some(body_span)) {
        return Err(e);
    }
    Ok(Post {
        front,
        body,
        body_line,
    })
}

/// A text that is not empty but shows nothing: only zero-width characters, direction
/// marks and isolates, joiners, variation selectors, blank fillers and whitespace. Published,
/// it is a post nobody can see (and a near-duplicate check that compares nothing).
fn invisible_text_error(text: &str, span: Option<Range<usize>>) -> Option<PostError> {
    if text.is_empty() || text.chars().any(is_visible) {
        return None;
    }
    let mut seen: Vec<String> = Vec::new();
    for c in text.chars().filter(|c| !c.is_whitespace()) {
        let code = format!("U+{:04X}", u32::from(c));
        if !seen.contains(&code) {
            seen.push(code);
        }
    }
    let shown = match seen.len() {
        0 => String::new(),
        1..=4 => format!(" ({})", seen.join(", ")),
        n => format!(" ({} and {} more)", seen[..3].join(", "), n - 3),
    };
    Some(PostError::new(
        format!("the post text has only invisible characters{shown}: nobody would see it"),
        "write the text people should see after the closing `+++` line; for a post of only \
         media, leave the text out",
        span,
    ))
}

/// Whether a character shows something: not whitespace, not of zero display width (format
/// controls such as U+200B–U+200F, U+202A–U+202E, U+2060–U+2069, U+FEFF; combining marks
/// and variation selectors on their own), and not one of the fillers that render as blank
/// space at full width.
fn is_visible(c: char) -> bool {
    use unicode_width::UnicodeWidthChar;
    const BLANK: [char; 5] = ['\u{115F}', '\u{1160}', '\u{3164}', '\u{FFA0}', '\u{2800}'];
    !c.is_whitespace() && c.width().is_some_and(|w| w > 0) && !BLANK.contains(&c)
}

/// 1-based line of byte `pos` of `text`.
fn line_of(text: &str, pos: usize) -> usize {
    text.as_bytes()[..pos]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The span of the line before `pos` (the closing `+++`), to point at where text is missing.
fn front_range_end_span(text: &str, pos: usize) -> Option<Range<usize>> {
    if pos == 0 {
        return None;
    }
    let before = text[..pos].trim_end_matches(['\n', '\r']);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Some(line_start..before.len())
}

/// The text of a file, or why it is not a text post: empty, UTF-16, binary, not UTF-8.
fn decode(bytes: &[u8]) -> Result<&str, PostError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(PostError::new(
            "the file is empty",
            "write the post text in the file, optionally after `+++` TOML front matter",
            None,
        ));
    }
    // Windows editors save "Unicode" as UTF-16 with a byte-order mark; say so rather than
    // calling it binary because of its NUL bytes.
    if bytes.starts_with(&[0xff, 0xfe]) || bytes.starts_with(&[0xfe, 0xff]) {
        return Err(PostError::new(
            "the file is UTF-16 text, not UTF-8",
            "save the file with the UTF-8 encoding (most editors offer it under \"Save as\")",
            Some(0..2),
        ));
    }
    if let Some(pos) = bytes.iter().position(|&b| b == 0) {
        let line = bytes[..pos].iter().filter(|&&b| b == b'\n').count() + 1;
        return Err(PostError::new(
            format!(
                "the file contains a NUL byte (line {line}, byte {pos}): it looks like a binary file, not a text post"
            ),
            "post files are plain UTF-8 text; put images in a sub-folder and name them in `media`",
            Some(pos..pos + 1),
        ));
    }
    std::str::from_utf8(bytes).map_err(|e| {
        let pos = e.valid_up_to();
        let line = bytes[..pos].iter().filter(|&&b| b == b'\n').count() + 1;
        PostError::new(
            format!("the file is not valid UTF-8 text (line {line}, byte {pos})"),
            "save the file with the UTF-8 encoding (most editors offer it under \"Save as\")",
            Some(pos..pos + e.error_len().unwrap_or(1)),
        )
    })
}

/// Finds the front matter: the byte range between the `+++` lines, and where the body starts.
fn split_front_matter(
    text: &str,
    start: usize,
) -> Result<(Option<Range<usize>>, usize), PostError> {
    let mut lines = lines_with_offsets(text, start);
    let Some((first_at, first)) = lines.next() else {
        return Ok((None, start));
    };
    let first_trimmed = first.trim_end();
    if first_trimmed == "+++" {
        let front_start = first_at + first.len();
        for (at, line) in lines {
            if line.trim_end() == "+++" {
                return Ok((Some(front_start..at), at + line.len()));
            }
        }
        return Err(PostError::new(
            "the `+++` front matter is not closed",
            "add a line with only `+++` between the front matter and the post text",
            Some(first_at..first_at + first_trimmed.len()),
        ));
    }
    if first_trimmed == "---" {
        return Err(yaml_error(first_at..first_at + 3));
    }
    // Front matter after blank lines would otherwise be published as text.
    if first_trimmed.is_empty() {
        for (at, line) in lines {
            let trimmed = line.trim_end();
            if trimmed == "+++" || trimmed == "---" {
                return Err(PostError::new(
                    format!("`{trimmed}` front matter must start on the first line of the file"),
                    "remove the blank lines before it",
                    Some(at..at + 3),
                ));
            }
            if !trimmed.is_empty() {
                break;
            }
        }
    }
    Ok((None, start))
}

fn yaml_error(span: Range<usize>) -> PostError {
    PostError::new(
        "YAML front matter (`---`) is not supported",
        "use TOML front matter between `+++` lines: replace both `---` lines with `+++` and \
         write values TOML-style, e.g. `at = \"2026-11-27T09:00\"`",
        Some(span),
    )
}

/// Lines of `text` from `start`, each with its byte offset and without its `\n`.
fn lines_with_offsets(text: &str, start: usize) -> impl Iterator<Item = (usize, &str)> {
    let mut at = start;
    text[start..].split_inclusive('\n').map(move |line| {
        let here = at;
        at += line.len();
        (here, line.strip_suffix('\n').unwrap_or(line))
    })
}

fn shift(span: Range<usize>, by: usize) -> Range<usize> {
    span.start + by..span.end + by
}

/// Parses the front matter at `range` of `text`; spans in errors are offsets of `text`.
fn parse_front(text: &str, range: Range<usize>) -> Result<FrontMatter, PostError> {
    let src = &text[range.clone()];
    let off = range.start;
    let toml_error = |e: toml::de::Error| {
        PostError::new(
            format!(
                "invalid TOML in the front matter: {}",
                e.message().trim_end()
            ),
            "front matter is TOML: `key = value`, strings in quotes, e.g. `lang = \"en\"`",
            Some(e.span().map_or(range.clone(), |s| shift(s, off))),
        )
    };
    // The spanned tree says where each key and value is; the plain table gives the values
    // (and the `[platform]` table as a `toml::Table`) without re-implementing conversions.
    let spanned = DeTable::parse(src).map_err(toml_error)?;
    let values: toml::Table = toml::from_str(src).map_err(toml_error)?;

    // Every problem, in file order (not in the map's key order).
    let mut entries: Vec<(&Spanned<_>, &Spanned<DeValue<'_>>)> = spanned.get_ref().iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);

    let mut front = FrontMatter::default();
    let mut expires_span = None;
    let mut errors = Vec::new();
    for (key, de) in entries {
        let name: &str = key.get_ref();
        let key_span = shift(key.span(), off);
        let value_span = shift(de.span(), off);
        let value = &values[name];
        let outcome: Result<(), PostError> = match name {
            "at" | "expires" => parse_time(name, value)
                .map_err(|(message, help)| PostError::new(message, help, Some(value_span.clone())))
                .map(|time| {
                    if name == "at" {
                        front.at = Some(time);
                    } else {
                        front.expires = Some(time);
                        expires_span = Some(value_span.clone());
                    }
                }),
            "priority" => value
                .as_integer()
                .ok_or_else(|| {
                    PostError::new(
                        format!(
                            "`priority` must be a whole number, not {}",
                            crate::diag::a(value.type_str())
                        ),
                        "write e.g. `priority = 1`: higher goes first among posts due at a slot",
                        Some(value_span.clone()),
                    )
                })
                .map(|p| front.priority = p),
            "media" => parse_media(value, de, off).map(|m| front.media = m),
            "link" => parse_link(value)
                .map_err(|m| {
                    PostError::new(
                        m,
                        "write a full web address, e.g. `link = \"https://shop.example/sale\"`",
                        Some(value_span.clone()),
                    )
                })
                .map(|l| front.link = Some(l)),
            "lang" => parse_lang(value)
                .map_err(|(m, help)| PostError::new(m, help, Some(value_span.clone())))
                .map(|l| front.lang = Some(l)),
            "platform" => match value {
                toml::Value::Table(t) => {
                    front.platform = t.clone();
                    Ok(())
                }
                other => Err(PostError::new(
                    format!(
                        "`platform` must be a table, not {}",
                        crate::diag::a(other.type_str())
                    ),
                    "write platform fields under a `[platform]` line at the end of the \
                     front matter, e.g. `[platform]` then `board_id = \"549755885175\"`",
                    Some(value_span),
                )),
            },
            unknown => Err(unknown_key(unknown, &KEYS, key_span, true)),
        };
        if let Err(mut e) = outcome {
            // A media list reports each of its entries' problems: keep them in order.
            let more = std::mem::take(&mut e.also);
            errors.push(e);
            errors.extend(more);
        }
    }

    if let (Some(at), Some(expires), Some(span)) = (front.at, front.expires, expires_span)
        && !expires_after(at, expires)
    {
        errors.push(PostError::new(
            "`expires` is not after `at`: the post would expire before it is due",
            "set `expires` later than `at`, or remove one of them",
            Some(span),
        ));
    }
    if errors.is_empty() {
        Ok(front)
    } else {
        Err(PostError::all(errors))
    }
}

/// Whether `expires` is after `at`, as far as it can be known without the channel's zone.
/// A local time is some instant within the widest real UTC offsets (-12h..+14h) of the same
/// wall time read as UTC; only a certain contradiction is refused here, and the daemon
/// treats the rest as an ordinary expiry once it knows the zone.
fn expires_after(at: PostTime, expires: PostTime) -> bool {
    use jiff::ToSpan;
    let bounds = |t: PostTime| -> Option<(Timestamp, Timestamp)> {
        match t {
            PostTime::Exact(t) => Some((t, t)),
            PostTime::Local(dt) => {
                let as_utc = dt.to_zoned(TimeZone::UTC).ok()?.timestamp();
                Some((
                    as_utc.checked_sub(14.hours()).ok()?,
                    as_utc.checked_add(12.hours()).ok()?,
                ))
            }
        }
    };
    match (at, expires) {
        (PostTime::Local(a), PostTime::Local(e)) => e > a,
        _ => match (bounds(at), bounds(expires)) {
            (Some((at_earliest, _)), Some((_, expires_latest))) => expires_latest > at_earliest,
            _ => true,
        },
    }
}

fn unknown_key(name: &str, known: &[&str], span: Range<usize>, top_level: bool) -> PostError {
    let suggestion =
        alias(name, known).or_else(|| crate::diag::did_you_mean(name, known.iter().copied()));
    let help = match suggestion {
        Some(best) => format!("did you mean `{best}`?"),
        None if top_level => format!(
            "the front-matter keys are {}; platform-specific fields go in the `[platform]` table",
            known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => format!(
            "the keys are {}",
            known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let message = if top_level {
        format!("unknown front-matter key `{name}`")
    } else {
        format!("unknown key `{name}` in a `media` entry")
    };
    PostError::new(message, help, Some(span))
}

/// Names people reach for that are too far from ours for an edit-distance hint.
fn alias(name: &str, known: &[&str]) -> Option<&'static str> {
    let meant = match name.to_ascii_lowercase().as_str() {
        "date" | "time" | "when" | "publish_at" | "schedule" | "scheduled" => "at",
        "expiry" | "until" | "expires_at" => "expires",
        "image" | "images" | "photo" | "photos" | "attachments" => "media",
        "url" => "link",
        "language" | "locale" => "lang",
        "alt_text" | "alttext" | "description" | "caption" => "alt",
        "file" | "src" => "path",
        _ => return None,
    };
    known.contains(&meant).then_some(meant)
}

/// `at` / `expires`: a TOML datetime or a string, in the forms of [`TIME_FORMS`].
fn parse_time(key: &str, value: &toml::Value) -> Result<PostTime, (String, String)> {
    let text = match value {
        toml::Value::String(s) => s.clone(),
        // The TOML datetime prints back in its own RFC 3339 form, which the string parser
        // reads; date-only and time-only TOML values fail there with the same help.
        toml::Value::Datetime(d) => d.to_string(),
        other => {
            return Err((
                format!(
                    "`{key}` must be a date and time, not {}",
                    crate::diag::a(other.type_str())
                ),
                TIME_FORMS.to_string(),
            ));
        }
    };
    let time = parse_time_str(text.trim()).map_err(|reason| {
        let message = match reason {
            Some(reason) => format!("`{key}` is not a valid date and time: `{text}` ({reason})"),
            None => format!("`{key}` is not a date and time in an accepted form: `{text}`"),
        };
        (message, TIME_FORMS.to_string())
    })?;
    // Far dates would overflow the arithmetic of slots, gaps and local days downstream.
    let out_of_range = match time {
        PostTime::Exact(t) => day::instant_out_of_range(t),
        PostTime::Local(dt) => day::out_of_range(dt.date()),
    };
    match out_of_range {
        None => Ok(time),
        Some(reason) => Err((
            format!("`{key}` is out of range: `{text}` ({reason})"),
            if key == "expires" {
                "for a post that should never expire, leave `expires` out; otherwise write a \
                 date in the years named"
                    .to_string()
            } else {
                "write the date the post should go out, e.g. `at = \"2026-11-27T09:00\"`"
                    .to_string()
            },
        )),
    }
}

/// `YYYY-MM-DD(T| )HH:MM[:SS[.f]][Z|±HH:MM]`. The shape is checked here because jiff alone
/// also takes a bare date (as midnight) and bracketed zone names, which a post should not
/// mean by accident. `Err(Some(reason))` when the shape is right but the date is not.
fn parse_time_str(s: &str) -> Result<PostTime, Option<String>> {
    let b = s.as_bytes();
    let digits = |r: Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let date_time_ok = b.len() >= 16
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && matches!(b[10], b'T' | b't' | b' ')
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16);
    if !date_time_ok {
        return Err(None);
    }
    let mut i = 16;
    if b.get(i) == Some(&b':') {
        if !digits(i + 1..i + 3) {
            return Err(None);
        }
        i += 3;
        if b.get(i) == Some(&b'.') {
            let frac = b[i + 1..].iter().take_while(|d| d.is_ascii_digit()).count();
            if !(1..=9).contains(&frac) {
                return Err(None);
            }
            i += 1 + frac;
        }
    }
    let offset = &s[i..];
    let exact = match offset.as_bytes() {
        [] => false,
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2]
            if [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit()) =>
        {
            true
        }
        _ => return Err(None),
    };
    if exact {
        Timestamp::from_str(s)
            .map(PostTime::Exact)
            .map_err(|e| Some(e.to_string()))
    } else {
        DateTime::from_str(s)
            .map(PostTime::Local)
            .map_err(|e| Some(e.to_string()))
    }
}

fn parse_media(
    value: &toml::Value,
    de: &Spanned<DeValue<'_>>,
    off: usize,
) -> Result<Vec<MediaRef>, PostError> {
    let whole = shift(de.span(), off);
    let (Some(items), Some(de_items)) = (value.as_array(), de.get_ref().as_array()) else {
        return Err(PostError::new(
            format!(
                "`media` must be a list, not {}",
                crate::diag::a(value.type_str())
            ),
            MEDIA_FORM,
            Some(whole),
        ));
    };
    let mut media = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (item, de_item) in items.iter().zip(de_items.iter()) {
        match media_entry(item, de_item, off) {
            Ok(m) => media.push(m),
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() {
        Ok(media)
    } else {
        Err(PostError::all(errors))
    }
}

/// One `media` entry, or all of its problems.
fn media_entry(
    item: &toml::Value,
    de_item: &Spanned<DeValue<'_>>,
    off: usize,
) -> Result<MediaRef, Vec<PostError>> {
    let item_span = shift(de_item.span(), off);
    let (Some(table), Some(de_table)) = (item.as_table(), de_item.get_ref().as_table()) else {
        return Err(vec![PostError::new(
            format!(
                "each `media` entry must be a table with `path` and `alt`, not {}",
                crate::diag::a(item.type_str())
            ),
            MEDIA_FORM,
            Some(item_span),
        )]);
    };
    let mut errors = Vec::new();
    let mut keys: Vec<_> = de_table.iter().collect();
    keys.sort_by_key(|(k, _)| k.span().start);
    for (k, _) in &keys {
        if !MEDIA_KEYS.contains(&k.get_ref().as_ref()) {
            errors.push(unknown_key(
                k.get_ref(),
                &MEDIA_KEYS,
                shift(k.span(), off),
                false,
            ));
        }
    }
    let span_of = |key: &str| {
        de_table
            .get(key)
            .map_or(item_span.clone(), |v| shift(v.span(), off))
    };
    let path = match table.get("path") {
        Some(toml::Value::String(p)) if !p.trim().is_empty() => {
            // Absolute paths would bypass the rule that media live in the queue, and would
            // break when the queue moves; relative to the post file is the one way to write it.
            if p.starts_with('/') {
                errors.push(PostError::new(
                    format!("media path `{p}` is absolute"),
                    "write media paths relative to the post file, e.g. `img/sale.jpg` or `../_media/logo.png`",
                    Some(span_of("path")),
                ));
            }
            Some(p.clone())
        }
        Some(toml::Value::String(_)) => {
            errors.push(PostError::new(
                "a `media` entry has an empty `path`",
                MEDIA_FORM,
                Some(span_of("path")),
            ));
            None
        }
        Some(other) => {
            errors.push(PostError::new(
                format!(
                    "a `media` `path` must be a string, not {}",
                    crate::diag::a(other.type_str())
                ),
                MEDIA_FORM,
                Some(span_of("path")),
            ));
            None
        }
        None => {
            errors.push(PostError::new(
                "a `media` entry has no `path`",
                MEDIA_FORM,
                Some(item_span.clone()),
            ));
            None
        }
    };
    let alt = match table.get("alt") {
        None => None,
        Some(toml::Value::String(a)) => (!a.trim().is_empty()).then(|| a.clone()),
        Some(other) => {
            errors.push(PostError::new(
                format!(
                    "a `media` `alt` must be a string, not {}",
                    crate::diag::a(other.type_str())
                ),
                MEDIA_FORM,
                Some(span_of("alt")),
            ));
            None
        }
    };
    match path {
        Some(path) if errors.is_empty() => Ok(MediaRef { path, alt }),
        _ => Err(errors),
    }
}

fn parse_link(value: &toml::Value) -> Result<String, String> {
    let toml::Value::String(s) = value else {
        return Err(format!(
            "`link` must be a string, not {}",
            crate::diag::a(value.type_str())
        ));
    };
    let ok = reqwest::Url::parse(s).is_ok_and(|url| {
        matches!(url.scheme(), "http" | "https") && url.host_str().is_some_and(|h| !h.is_empty())
    });
    if ok && !s.chars().any(char::is_whitespace) {
        Ok(s.clone())
    } else {
        Err(format!("`link` must be an http(s) URL: `{s}`"))
    }
}

/// A BCP-47-ish tag: a 2–3 letter language, then `-`-separated subtags of 1–8 letters or
/// digits (`en`, `pt-BR`, `zh-Hant-TW`). Enough to catch typos without a tag registry.
fn parse_lang(value: &toml::Value) -> Result<String, (String, String)> {
    let help = "write a language tag like `en`, `de`, `pt-BR` or `zh-Hant`".to_string();
    let toml::Value::String(s) = value else {
        return Err((
            format!(
                "`lang` must be a string, not {}",
                crate::diag::a(value.type_str())
            ),
            help,
        ));
    };
    let mut parts = s.split('-');
    let primary = parts.next().unwrap_or("");
    let ok = (2..=3).contains(&primary.len())
        && primary.bytes().all(|b| b.is_ascii_alphabetic())
        && parts
            .all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()));
    if ok {
        return Ok(s.clone());
    }
    let help = if s.contains('_') {
        format!(
            "language tags use `-`, not `_`: did you mean `{}`?",
            s.replace('_', "-")
        )
    } else {
        help
    };
    Err((format!("`lang` is not a language tag: `{s}`"), help))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(src: &str) -> Post {
        parse(src.as_bytes()).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn err(src: impl AsRef<[u8]>) -> PostError {
        match parse(src.as_ref()) {
            Ok(post) => panic!("parsed: {post:?}"),
            Err(e) => e,
        }
    }

    /// The 1-based line and the text the error's span covers.
    fn at(src: &str, e: &PostError) -> (usize, String) {
        let span = e.span.clone().expect("a span");
        (line_of(src, span.start), src[span].to_string())
    }

    fn local(s: &str) -> PostTime {
        PostTime::Local(s.parse().unwrap())
    }

    #[test]
    fn full_front_matter() {
        let src = "+++\n\
            at = \"2026-11-27T09:00\"\n\
            expires = 2026-11-28T00:00:00\n\
            priority = 3\n\
            media = [{ path = \"img/sale.jpg\", alt = \"Red sneakers on a shelf\" }, { path = \"../_media/logo.png\" }]\n\
            link = \"https://shop.example/black-friday\"\n\
            lang = \"pt-BR\"\n\
            [platform]\n\
            board_id = \"549755885175\"\n\
            +++\n\
            Black Friday: 30% off all sneakers until midnight.\n";
        let post = ok(src);
        assert_eq!(post.front.at, Some(local("2026-11-27T09:00")));
        assert_eq!(post.front.expires, Some(local("2026-11-28T00:00")));
        assert_eq!(post.front.priority, 3);
        assert_eq!(
            post.front.media,
            vec![
                MediaRef {
                    path: "img/sale.jpg".into(),
                    alt: Some("Red sneakers on a shelf".into())
                },
                MediaRef {
                    path: "../_media/logo.png".into(),
                    alt: None
                },
            ]
        );
        assert_eq!(
            post.front.link.as_deref(),
            Some("https://shop.example/black-friday")
        );
        assert_eq!(post.front.lang.as_deref(), Some("pt-BR"));
        assert_eq!(
            post.front.platform["board_id"].as_str(),
            Some("549755885175")
        );
        assert_eq!(
            post.body,
            "Black Friday: 30% off all sneakers until midnight."
        );
        assert_eq!(post.body_line, 11);
    }

    #[test]
    fn no_front_matter_and_blank_lines_trimmed_but_inner_text_kept() {
        let src = "\n\n  First line  \n\n\n  indented\tand tabs\n\n\n";
        let post = ok(src);
        assert_eq!(post.body, "  First line  \n\n\n  indented\tand tabs");
        assert_eq!(post.body_line, 3);
        assert_eq!(post.front, FrontMatter::default());
    }

    #[test]
    fn cjk_and_emoji_round_trip_exactly() {
        let body = "冬季セール開始！全品30%オフ 🎉\n\n詳細はこちら → 店舗にて。";
        let post = ok(&format!("+++\nlang = \"ja\"\n+++\n{body}\n"));
        assert_eq!(post.body, body);
    }

    #[test]
    fn bare_cr_line_ends_are_line_ends_not_text() {
        // Published with its front matter as the text, before.
        let src = "+++\rpriority = 2\rlink = \"https://shop.example/\"\r+++\rHello\rworld\r";
        let post = ok(src);
        assert_eq!(post.front.priority, 2);
        assert_eq!(post.body, "Hello\nworld");
        assert_eq!(post.body_line, 5);
        // Errors point at the line as an editor shows it.
        let src = "+++\rpriority = 2\rprority = 3\r+++\rHello\r";
        let e = err(src);
        assert_eq!(e.span.clone().map(|s| &src[s]), Some("prority"));
        assert_eq!(line_of(&normalized(src), e.span.unwrap().start), 3);
        // Mixed with CRLF, only the bare ones change.
        assert_eq!(
            &*normalize_line_ends(b"a\r\nb\rc\r\r\n"),
            b"a\r\nb\nc\n\r\n"
        );
        assert!(matches!(normalize_line_ends(b"a\r\nb\n"), Cow::Borrowed(_)));
    }

    fn normalized(src: &str) -> String {
        String::from_utf8(normalize_line_ends(src.as_bytes()).into_owned()).unwrap()
    }

    #[test]
    fn a_body_of_only_zero_width_or_bidi_characters_is_refused() {
        for body in [
            "\u{200D}\u{200D}\u{200D}",
            "\u{200B}",
            "\u{202E}\u{2066}\u{2069}\u{200E}\u{200F}",
            "\u{2060} \u{FEFF}\n\u{200C}",
            "\u{FE0F}\u{034F}",
            "\u{3164}\u{3164}",
            "\u{E0061}\u{E007F}",
        ] {
            let src = format!("+++\npriority = 1\n+++\n{body}\n");
            let e = err(&src);
            assert!(
                e.message
                    .starts_with("the post text has only invisible characters (U+"),
                "{body:?}: {}",
                e.message
            );
            assert_eq!(at(&src, &e).0, 4, "{body:?}");
        }
        let e = err("\u{200D}\u{200D}\u{202E}");
        assert!(e.message.contains("(U+200D, U+202E)"), "{}", e.message);
        // Media with an invisible caption: refused too; visible text with joiners is fine.
        err("+++\nmedia = [{ path = \"a.png\", alt = \"A shoe\" }]\n+++\n\u{200B}\n");
        assert_eq!(ok("👩\u{200D}💻 at work").body, "👩\u{200D}💻 at work");
        assert_eq!(ok("\u{202B}שלום\u{202C}").body, "\u{202B}שלום\u{202C}");
        assert_eq!(ok("冬\u{200B}").body, "冬\u{200B}");
        assert!(parse_as("\u{200D}\n\n\u{200D}  \n".as_bytes(), Format::Markdown).is_err());
    }

    #[test]
    fn crlf_and_bom_are_understood() {
        let src = "\u{feff}+++\r\npriority = 2\r\n+++\r\nHello\r\nworld\r\n";
        let post = ok(src);
        assert_eq!(post.front.priority, 2);
        assert_eq!(post.body, "Hello\r\nworld");
        assert_eq!(post.body_line, 4);
    }

    #[test]
    fn time_forms() {
        let exact = |s: &str| PostTime::Exact(s.parse().unwrap());
        for (value, want) in [
            ("\"2026-11-27T09:00\"", local("2026-11-27T09:00")),
            ("\"2026-11-27T09:00:30\"", local("2026-11-27T09:00:30")),
            ("\"2026-11-27 09:00\"", local("2026-11-27T09:00")),
            ("2026-11-27T09:00", local("2026-11-27T09:00")),
            ("2026-11-27T09:00:00", local("2026-11-27T09:00")),
            (
                "\"2026-11-27T09:00:00+01:00\"",
                exact("2026-11-27T08:00:00Z"),
            ),
            ("\"2026-11-27T09:00-05:00\"", exact("2026-11-27T14:00:00Z")),
            ("\"2026-11-27T08:00:00Z\"", exact("2026-11-27T08:00:00Z")),
            (
                "2026-11-27T09:00:00.5+01:00",
                exact("2026-11-27T08:00:00.5Z"),
            ),
            ("2026-11-27 08:00:00Z", exact("2026-11-27T08:00:00Z")),
        ] {
            let post = ok(&format!("+++\nat = {value}\n+++\nx"));
            assert_eq!(post.front.at, Some(want), "{value}");
        }
    }

    #[test]
    fn resolve_local_and_exact() {
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        assert_eq!(
            local("2026-11-27T09:00").resolve(&tz),
            "2026-11-27T08:00:00Z".parse::<Timestamp>().unwrap()
        );
        // Spring forward in Berlin: 02:30 does not exist; the first instant after the gap.
        assert_eq!(
            local("2026-03-29T02:30").resolve(&tz),
            "2026-03-29T01:00:00Z".parse::<Timestamp>().unwrap()
        );
        // Fall back: 02:30 happens twice; the first one (still +02:00).
        assert_eq!(
            local("2026-10-25T02:30").resolve(&tz),
            "2026-10-25T00:30:00Z".parse::<Timestamp>().unwrap()
        );
        let t: Timestamp = "2026-11-27T08:00:00Z".parse().unwrap();
        assert_eq!(PostTime::Exact(t).resolve(&tz), t);
    }

    #[test]
    fn bad_dates_name_the_accepted_forms() {
        for value in [
            "\"tomorrow 9am\"",
            "\"2026-11-27\"",
            "2026-11-27",
            "09:00:00",
            "\"27.11.2026 09:00\"",
            "\"2026-11-27T09:00[Europe/Paris]\"",
            "\"2026-11-27T09\"",
            "20261127",
        ] {
            let src = format!("+++\npriority = 1\nat = {value}\n+++\nx");
            let e = err(&src);
            assert!(e.message.starts_with("`at` "), "{value}: {}", e.message);
            assert!(
                e.help.contains("2026-11-27T09:00") && e.help.contains("RFC 3339"),
                "{}",
                e.help
            );
            assert_eq!(at(&src, &e), (3, value.to_string()));
        }
        let src = "+++\nexpires = \"2026-02-30T09:00\"\n+++\nx";
        let e = err(src);
        assert!(
            e.message.contains("not a valid date") && e.message.contains("2026-02-30T09:00"),
            "{}",
            e.message
        );
        assert_eq!(at(src, &e).0, 2);
    }

    #[test]
    fn at_in_year_9999_is_an_error_not_a_panic() {
        for (key, value) in [
            ("at", "\"9999-12-31T23:59\""),
            ("at", "9999-12-31T23:59:00"),
            ("at", "\"9000-06-01T00:00:00Z\""),
            ("expires", "\"9999-12-31T23:59\""),
            ("at", "\"0001-01-01T00:00\""),
            ("at", "\"1899-12-31T23:59:59Z\""),
        ] {
            let src = format!("+++\npriority = 1\n{key} = {value}\n+++\nx");
            let e = err(&src);
            assert!(
                e.message.starts_with(&format!("`{key}` is out of range"))
                    && e.message.contains("1900–8999"),
                "{value}: {}",
                e.message
            );
            assert_eq!(at(&src, &e), (3, value.to_string()));
        }
        let e = err("+++\nexpires = \"9999-12-31T23:59\"\n+++\nx");
        assert!(e.help.contains("leave `expires` out"), "{}", e.help);
        // The edges of the range are fine, in every zone.
        let post = ok("+++\nat = \"8999-12-31T23:59\"\nexpires = \"8999-12-31T23:59:59\"\n+++\nx");
        for zone in ["Pacific/Kiritimati", "Etc/GMT+12"] {
            let tz = TimeZone::get(zone).unwrap();
            assert!(post.front.at.unwrap().resolve(&tz) < Timestamp::MAX);
        }
        ok("+++\nat = \"1900-01-01T00:00\"\n+++\nx");
    }

    #[test]
    fn expires_before_at() {
        let src = "+++\nat = \"2026-11-27T09:00\"\nexpires = \"2026-11-27T08:00\"\n+++\nx";
        let e = err(src);
        assert!(
            e.message.contains("`expires` is not after `at`"),
            "{}",
            e.message
        );
        assert!(e.help.contains("later"), "{}", e.help);
        assert_eq!(at(src, &e), (3, "\"2026-11-27T08:00\"".to_string()));

        // Exact against exact.
        err("+++\nat = \"2026-11-27T09:00:00Z\"\nexpires = \"2026-11-27T09:00:00+01:00\"\n+++\nx");
        // Local against exact: refused only when no zone could make it right.
        err("+++\nat = \"2026-11-28T09:00\"\nexpires = \"2026-11-27T09:00:00Z\"\n+++\nx");
        ok("+++\nat = \"2026-11-27T09:00\"\nexpires = \"2026-11-27T08:30:00Z\"\n+++\nx");
        ok("+++\nat = \"2026-11-27T09:00\"\nexpires = \"2026-11-28T00:00\"\n+++\nx");
    }

    #[test]
    fn non_utf8_says_where() {
        let src = b"+++\nlang = \"en\"\n+++\nCaf\xe9 au lait\n";
        let e = err(src);
        assert_eq!(
            e.message,
            "the file is not valid UTF-8 text (line 4, byte 23)"
        );
        assert!(e.help.contains("UTF-8"), "{}", e.help);
        assert_eq!(e.span, Some(23..24));
    }

    #[test]
    fn utf16_is_named() {
        let e = err(b"\xff\xfeH\0i\0");
        assert!(e.message.contains("UTF-16"), "{}", e.message);
        assert!(e.help.contains("UTF-8"), "{}", e.help);
    }

    #[test]
    fn empty_files() {
        for src in ["", "\n\n", "  \n\t\n"] {
            let e = err(src);
            assert_eq!(e.message, "the file is empty");
            assert!(e.help.contains("post text"), "{}", e.help);
            assert_eq!(e.span, None);
        }
    }

    #[test]
    fn empty_body_without_media() {
        let src = "+++\nlang = \"en\"\n+++\n\n  \n";
        let e = err(src);
        assert_eq!(e.message, "the post has no text and no media");
        assert!(e.help.contains("after the closing `+++`"), "{}", e.help);
        assert_eq!(at(src, &e), (3, "+++".to_string()));
    }

    #[test]
    fn media_as_array_of_tables() {
        let src = "+++\nlang = \"en\"\n[[media]]\npath = \"a.jpg\"\nalt = \"A cat\"\n[[media]]\npath = \"b.jpg\"\nalt = \" \"\n+++\nCats";
        let post = ok(src);
        assert_eq!(
            post.front.media,
            vec![
                MediaRef {
                    path: "a.jpg".into(),
                    alt: Some("A cat".into())
                },
                MediaRef {
                    path: "b.jpg".into(),
                    alt: None
                },
            ]
        );
        let src = "+++\n[[media]]\npath = \"a.jpg\"\ntext = \"A cat\"\n+++\nCats";
        assert_eq!(at(src, &err(src)), (4, "text".to_string()));
    }

    #[test]
    fn media_only_post_is_fine() {
        let post = ok("+++\nmedia = [{ path = \"a.jpg\", alt = \"A cat\" }]\n+++\n");
        assert_eq!(post.body, "");
        assert_eq!(post.front.media.len(), 1);
    }

    #[test]
    fn nul_bytes_mean_binary() {
        let src = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        let e = err(src);
        assert!(
            e.message.contains("binary file") && e.message.contains("line 3, byte 8"),
            "{}",
            e.message
        );
        assert!(e.help.contains("media"), "{}", e.help);
        assert_eq!(e.span, Some(8..9));
        // NUL in otherwise valid UTF-8 text, too.
        assert!(err("hello\0world").message.contains("NUL"));
    }

    #[test]
    fn invalid_toml_points_at_the_line() {
        let src = "+++\npriority = 1\nlang = en\n+++\nx";
        let e = err(src);
        assert!(
            e.message.starts_with("invalid TOML in the front matter: "),
            "{}",
            e.message
        );
        assert!(e.help.contains("`lang = \"en\"`"), "{}", e.help);
        assert_eq!(at(src, &e).0, 3);

        let src = "+++\nlang = \"en\"\nlang = \"de\"\n+++\nx";
        let e = err(src);
        assert!(e.message.contains("duplicate key"), "{}", e.message);
        assert_eq!(at(src, &e), (3, "lang".to_string()));
    }

    #[test]
    fn unknown_keys_suggest() {
        let src = "+++\nat = \"2026-11-27T09:00\"\nprority = 1\n+++\nx";
        let e = err(src);
        assert_eq!(e.message, "unknown front-matter key `prority`");
        assert_eq!(e.help, "did you mean `priority`?");
        assert_eq!(at(src, &e), (3, "prority".to_string()));

        let src = "+++\nboard_id = \"1\"\n+++\nx";
        let e = err(src);
        assert!(
            e.help.contains("`[platform]` table") && e.help.contains("`expires`"),
            "{}",
            e.help
        );
        assert_eq!(at(src, &e), (2, "board_id".to_string()));

        let src = "+++\nlang = \"en\"\ndate = \"2026-11-27T09:00\"\n+++\nx";
        assert_eq!(err(src).help, "did you mean `at`?");

        // The first unknown key in the file, not in key order.
        let src = "+++\nzebra = 1\napple = 2\n+++\nx";
        assert_eq!(at(src, &err(src)), (2, "zebra".to_string()));
    }

    #[test]
    fn lnik_gets_a_did_you_mean_for_link() {
        // Two neighbours swapped is one slip, not two.
        let src = "+++\nlnik = \"https://shop.example/\"\n+++\nx";
        assert_eq!(err(src).help, "did you mean `link`?");
        let src = "+++\nexpiers = \"2026-11-28T00:00\"\n+++\nx";
        assert_eq!(err(src).help, "did you mean `expires`?");
    }

    #[test]
    fn a_post_file_reports_all_its_errors_at_once_in_file_order() {
        let src = "+++\nlnik = \"https://shop.example/\"\nat = \"tomorrow\"\npriority = \"high\"\nmedia = [{ path = \"/abs.jpg\", alt = 3 }]\n+++\nx";
        let e = err(src);
        let all: Vec<(usize, &str)> = std::iter::once(&e)
            .chain(e.also.iter())
            .map(|e| {
                (
                    line_of(src, e.span.clone().unwrap().start),
                    e.message.as_str(),
                )
            })
            .collect();
        assert_eq!(
            all,
            [
                (2, "unknown front-matter key `lnik`"),
                (
                    3,
                    "`at` is not a date and time in an accepted form: `tomorrow`"
                ),
                (4, "`priority` must be a whole number, not a string"),
                (5, "media path `/abs.jpg` is absolute"),
                (5, "a `media` `alt` must be a string, not an integer"),
            ]
        );
    }

    #[test]
    fn unknown_media_keys_suggest() {
        let src = "+++\nmedia = [\n  { path = \"a.jpg\", alt_text = \"A cat\" },\n]\n+++\nx";
        let e = err(src);
        assert_eq!(e.message, "unknown key `alt_text` in a `media` entry");
        assert_eq!(e.help, "did you mean `alt`?");
        assert_eq!(at(src, &e), (3, "alt_text".to_string()));

        let src = "+++\nmedia = [{ pth = \"a.jpg\" }]\n+++\nx";
        assert_eq!(err(src).help, "did you mean `path`?");
        let src = "+++\nmedia = [{ path = \"a.jpg\", banana = 1 }]\n+++\nx";
        assert_eq!(err(src).help, "the keys are `path`, `alt`");
    }

    #[test]
    fn bad_media_shapes() {
        let cases = [
            (
                "media = \"a.jpg\"",
                "`media` must be a list, not a string",
                "\"a.jpg\"",
            ),
            (
                "media = [\"a.jpg\"]",
                "each `media` entry must be a table",
                "\"a.jpg\"",
            ),
            (
                "media = [{ alt = \"A\" }]",
                "a `media` entry has no `path`",
                "{ alt = \"A\" }",
            ),
            (
                "media = [{ path = \"\" }]",
                "a `media` entry has an empty `path`",
                "\"\"",
            ),
            (
                "media = [{ path = 3 }]",
                "a `media` `path` must be a string, not an integer",
                "3",
            ),
            (
                "media = [{ path = \"a.jpg\", alt = 1 }]",
                "a `media` `alt` must be a string",
                "1",
            ),
            (
                "media = [{ path = \"/srv/a.jpg\" }]",
                "media path `/srv/a.jpg` is absolute",
                "\"/srv/a.jpg\"",
            ),
        ];
        for (line, message, spanned) in cases {
            let src = format!("+++\nlang = \"en\"\n{line}\n+++\nx");
            let e = err(&src);
            assert!(e.message.starts_with(message), "{line}: {}", e.message);
            assert!(
                e.help.contains("relative") || e.help.contains("media = [{ path"),
                "{}",
                e.help
            );
            assert_eq!(at(&src, &e), (3, spanned.to_string()), "{line}");
        }
    }

    #[test]
    fn link_must_be_http() {
        for value in [
            "\"shop.example/sale\"",
            "\"ftp://shop.example/\"",
            "\"javascript:alert(1)\"",
            "\"https://\"",
            "3",
        ] {
            let src = format!("+++\nlink = {value}\n+++\nx");
            let e = err(&src);
            assert!(
                e.message.starts_with("`link` must be"),
                "{value}: {}",
                e.message
            );
            assert!(e.help.contains("https://shop.example/sale"), "{}", e.help);
            assert_eq!(at(&src, &e), (2, value.to_string()));
        }
        assert!(
            ok("+++\nlink = \"HTTP://Shop.example/a?b=c#d\"\n+++\nx")
                .front
                .link
                .is_some()
        );
    }

    #[test]
    fn lang_must_be_a_tag() {
        for value in ["\"english\"", "\"e\"", "\"en-\"", "\"en US\"", "true"] {
            let src = format!("+++\nlang = {value}\n+++\nx");
            let e = err(&src);
            assert!(e.message.starts_with("`lang` "), "{value}: {}", e.message);
            assert!(e.help.contains("`pt-BR`"), "{}", e.help);
            assert_eq!(at(&src, &e), (2, value.to_string()));
        }
        let e = err("+++\nlang = \"en_US\"\n+++\nx");
        assert!(e.help.contains("did you mean `en-US`?"), "{}", e.help);
        for tag in ["en", "deu", "zh-Hant-TW", "es-419"] {
            assert_eq!(
                ok(&format!("+++\nlang = \"{tag}\"\n+++\nx"))
                    .front
                    .lang
                    .as_deref(),
                Some(tag)
            );
        }
    }

    #[test]
    fn priority_must_be_an_integer() {
        let src = "+++\npriority = \"high\"\n+++\nx";
        let e = err(src);
        assert_eq!(e.message, "`priority` must be a whole number, not a string");
        assert!(e.help.contains("priority = 1"), "{}", e.help);
        assert_eq!(at(src, &e), (2, "\"high\"".to_string()));
        assert_eq!(ok("+++\npriority = -2\n+++\nx").front.priority, -2);
    }

    #[test]
    fn platform_must_be_a_table() {
        let src = "+++\nplatform = \"x\"\n+++\nx";
        let e = err(src);
        assert_eq!(e.message, "`platform` must be a table, not a string");
        assert!(e.help.contains("[platform]"), "{}", e.help);
        assert_eq!(at(src, &e), (2, "\"x\"".to_string()));
    }

    #[test]
    fn yaml_front_matter_says_use_toml() {
        let src = "---\ntitle: Sale\n---\nBlack Friday";
        let e = err(src);
        assert_eq!(e.message, "YAML front matter (`---`) is not supported");
        assert!(
            e.help.contains("`+++`") && e.help.contains("TOML"),
            "{}",
            e.help
        );
        assert_eq!(at(src, &e), (1, "---".to_string()));
    }

    #[test]
    fn unclosed_front_matter() {
        let src = "+++\nat = \"2026-11-27T09:00\"\nBlack Friday";
        let e = err(src);
        assert_eq!(e.message, "the `+++` front matter is not closed");
        assert!(e.help.contains("a line with only `+++`"), "{}", e.help);
        assert_eq!(at(src, &e), (1, "+++".to_string()));
    }

    #[test]
    fn front_matter_after_blank_lines_is_not_published_as_text() {
        let src = "\n+++\nlang = \"en\"\n+++\nHello";
        let e = err(src);
        assert!(
            e.message.contains("must start on the first line"),
            "{}",
            e.message
        );
        assert!(e.help.contains("remove the blank lines"), "{}", e.help);
        assert_eq!(at(src, &e), (2, "+++".to_string()));
    }

    #[test]
    fn plus_lines_inside_the_body_are_text() {
        let post = ok("Score: 3\n+++\nend");
        assert_eq!(post.body, "Score: 3\n+++\nend");
    }
}
