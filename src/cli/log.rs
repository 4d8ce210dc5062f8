//! `cadenced log`: the publish log, as a table for people or one JSON object per line, and
//! `--follow` to watch it grow like `tail -f`.
//!
//! A reader must never get in the daemon's way: the database is opened read-only and each
//! poll is one short statement (WAL lets it read while the daemon writes, and no read
//! transaction stays open between polls to hold back a checkpoint). Following polls by row
//! id once a second rather than watching the file: the WAL file changes on every write the
//! daemon makes, including ones that add no row, and a poll is cheap on an indexed id.
//!
//! Also home of the small table renderer `status` and `report` use: columns padded by
//! display width (CJK file names take two cells per character) and text from the queue
//! cleaned of control characters, since a file name is written by whoever can drop a file
//! into the queue and must not be able to move the terminal's cursor.

use std::borrow::Cow;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::builder::PossibleValuesParser;
use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::clock::Clock;
use crate::config::duration::parse_duration;
use crate::store::{self, LogQuery, LogRow, STATUSES, Store};

use super::{EXIT_CONFIG, EXIT_PROBLEMS, Output, load_config};

/// How often `--follow` asks the database for new rows.
const POLL: Duration = Duration::from_secs(1);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only rows of this channel.
    #[arg(long, value_name = "CHANNEL")]
    pub channel: Option<String>,
    /// Only rows since then: a span back from now (`7d`, `12h`, `1h30m`), an RFC 3339 time
    /// (`2026-11-20T09:00:00Z`) or a date (`2026-11-20`, from local midnight).
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Only rows with this status; repeat or separate with commas for several.
    #[arg(long, value_name = "STATUS", value_delimiter = ',',
          value_parser = PossibleValuesParser::new(STATUSES))]
    pub status: Vec<String>,
    /// Only the last N matching rows.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Keep running and print new rows as the daemon writes them (stop with Ctrl-C).
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// One JSON object per line: `time` (RFC 3339 UTC), `channel`, `platform`, `file`,
    /// `status`, `remote_id`, `remote_url`, `detail`.
    #[arg(long)]
    pub json: bool,
}

/// A row of `log --json`; the SPEC's documented shape, also the `publish_log` view's.
#[derive(Debug, serde::Serialize)]
struct JsonRow<'a> {
    time: String,
    channel: &'a str,
    platform: &'a str,
    file: &'a str,
    status: &'a str,
    remote_id: Option<&'a str>,
    remote_url: Option<&'a str>,
    detail: &'a str,
}

pub fn run(config_path: Option<&Path>, args: Args, clock: &dyn Clock, out: &Output) -> ExitCode {
    let loaded = match load_config(config_path, out) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let config = &loaded.config;
    let tz = Zones::of_config(config);
    let since = match args
        .since
        .as_deref()
        .map(|s| parse_since(s, clock.now(), &tz.common))
    {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(msg)) => {
            eprintln!("error: --since {:?}: {msg}", args.since.unwrap_or_default());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Some(ch) = &args.channel
        && !config.channels.iter().any(|c| &c.name == ch)
    {
        // Not an error: the log keeps rows of channels since removed from the config.
        let known: Vec<&str> = config.channels.iter().map(|c| c.name.as_str()).collect();
        eprintln!(
            "note: the config has no channel `{ch}` (it has: {}); showing what the log holds for it",
            known.join(", ")
        );
    }
    let mut query = LogQuery {
        channel: args.channel.clone(),
        since,
        statuses: args.status.clone(),
        last: args.limit,
        ..LogQuery::default()
    };

    let mut store = match open(&config.database, args.follow, out) {
        Ok(Some(store)) => Some(store),
        Ok(None) if args.follow => None,
        Ok(None) => return ExitCode::SUCCESS,
        Err(code) => return code,
    };
    while store.is_none() {
        std::thread::sleep(POLL);
        store = match Store::open_read_only(&config.database) {
            Ok(s) => s,
            Err(e) => return unreadable(&config.database, &e, out),
        };
    }
    let store = store.expect("waited for the database");

    // The first batch stops at the newest row now; polls continue from there, so no row
    // is shown twice or skipped.
    let head = match store.last_event_id() {
        Ok(id) => id,
        Err(e) => return unreadable(&config.database, &e, out),
    };
    query.up_to = Some(head);
    let rows = match store.log_rows(&query) {
        Ok(rows) => rows,
        Err(e) => return unreadable(&config.database, &e, out),
    };
    let mut widths = Widths::of(&rows, config.channels.iter().map(|c| c.name.as_str()), &tz);
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    if !args.json
        && (!rows.is_empty() || args.follow)
        && writeln!(w, "{}", widths.header()).is_err()
    {
        return ExitCode::SUCCESS;
    }
    if !args.json && rows.is_empty() && !args.follow {
        eprintln!("no rows of the publish log match");
    }
    if print(&mut w, &rows, &args, &widths, &tz).is_err() {
        // The reader went away (`cadenced log | head`): that is how such a pipe ends.
        return ExitCode::SUCCESS;
    }
    if !args.follow {
        return ExitCode::SUCCESS;
    }

    query.last = None;
    query.since = None;
    let mut after = head;
    loop {
        std::thread::sleep(POLL);
        // As for the first batch: up to the newest row at this moment, so a row written
        // while we read waits for the next poll instead of being skipped. Rows that do not
        // match the filters still move the position on, so no poll reads them again.
        let head = match store.last_event_id() {
            Ok(id) => id,
            Err(e) => return unreadable(&config.database, &e, out),
        };
        query.after = Some(after);
        query.up_to = Some(head);
        let rows = match store.log_rows(&query) {
            Ok(rows) => rows,
            Err(e) => return unreadable(&config.database, &e, out),
        };
        after = head;
        widths.grow(&rows, &tz);
        if print(&mut w, &rows, &args, &widths, &tz).is_err() {
            return ExitCode::SUCCESS;
        }
    }
}

/// Opens the log for reading; `None` (with a message) when there is none yet.
fn open(path: &Path, follow: bool, out: &Output) -> Result<Option<Store>, ExitCode> {
    let waiting = if follow { "; waiting for it" } else { "" };
    match Store::open_read_only(path) {
        Ok(Some(store)) => Ok(Some(store)),
        Ok(None) if path.exists() => {
            eprintln!(
                "the publish log at {} was written by an older cadenced: start the daemon once to upgrade it{waiting}",
                out.path(path)
            );
            Ok(None)
        }
        Ok(None) => {
            eprintln!(
                "no publish log yet at {}: the daemon has not run{waiting}",
                out.path(path)
            );
            Ok(None)
        }
        Err(e) => Err(unreadable(path, &e, out)),
    }
}

fn unreadable(path: &Path, e: &store::StoreError, out: &Output) -> ExitCode {
    eprintln!(
        "error: could not read the publish log {}: {e}\nhelp: staff need read access to it (the `cadenced` group)",
        out.path(path)
    );
    ExitCode::from(EXIT_PROBLEMS)
}

fn print(
    w: &mut impl Write,
    rows: &[LogRow],
    args: &Args,
    widths: &Widths,
    tz: &Zones,
) -> std::io::Result<()> {
    for row in rows {
        if args.json {
            let json = JsonRow {
                time: store::format_time(row.time),
                channel: &row.channel,
                platform: &row.platform,
                file: &row.file,
                status: &row.status,
                remote_id: row.remote_id.as_deref(),
                remote_url: row.remote_url.as_deref(),
                detail: &row.detail,
            };
            writeln!(
                w,
                "{}",
                serde_json::to_string(&json).expect("plain strings serialize")
            )?;
        } else {
            writeln!(w, "{}", widths.line(row, tz))?;
        }
    }
    w.flush()
}

/// `--since`: a span back from `now`, an instant, or a local date (from its midnight).
fn parse_since(s: &str, now: Timestamp, tz: &TimeZone) -> Result<Timestamp, String> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t);
    }
    if let Ok(z) = s.parse::<jiff::Zoned>() {
        return Ok(z.timestamp());
    }
    if let Ok(d) = s.parse::<jiff::civil::Date>() {
        if let Some(reason) = crate::cadence::day::out_of_range(d) {
            return Err(reason);
        }
        return Ok(crate::cadence::day::day_of_date(d, tz).start);
    }
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        let span = parse_duration(s)?;
        return now
            .checked_sub(span)
            .map_err(|_| "that reaches back too far".to_string());
    }
    Err("expected a span back from now (`7d`, `12h`, `1h30m`), an RFC 3339 time (`2026-11-20T09:00:00Z`) or a date (`2026-11-20`)".to_string())
}

/// Each row's time is shown in its channel's zone, named; rows of channels no longer in
/// the config (and `--since` dates) in the channels' common zone ([`super::common_zone`]).
struct Zones {
    by_channel: std::collections::HashMap<String, TimeZone>,
    common: TimeZone,
}

impl Zones {
    fn of_config(config: &crate::config::Config) -> Zones {
        Zones {
            by_channel: config
                .channels
                .iter()
                .map(|c| (c.name.clone(), c.rules.timezone.clone()))
                .collect(),
            common: super::common_zone(config),
        }
    }

    fn of(&self, channel: &str) -> &TimeZone {
        self.by_channel.get(channel).unwrap_or(&self.common)
    }
}

fn local_time(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

/// The last column: where the post went, and what the daemon said.
fn where_and_why(row: &LogRow) -> String {
    match (row.remote_url.as_deref(), row.detail.as_str()) {
        (Some(url), "") => url.to_string(),
        (Some(url), detail) => format!("{url}  {detail}"),
        (None, detail) => detail.to_string(),
    }
}

/// Column widths of the log table, fixed by the first batch and grown by later ones.
struct Widths {
    time: usize,
    channel: usize,
    status: usize,
    file: usize,
}

impl Widths {
    const HEADER: [&'static str; 5] = ["TIME", "CHANNEL", "STATUS", "FILE", "URL / DETAIL"];

    fn of<'a>(rows: &[LogRow], channels: impl Iterator<Item = &'a str>, tz: &Zones) -> Widths {
        let mut w = Widths {
            time: Self::HEADER[0].len(),
            channel: channels
                .map(width)
                .chain([Self::HEADER[1].len()])
                .max()
                .unwrap_or_default(),
            status: STATUSES.iter().map(|s| s.len()).max().unwrap_or_default(),
            file: Self::HEADER[3].len(),
        };
        w.grow(rows, tz);
        w
    }

    /// A followed log's new rows may be wider; its header is already out, so the table
    /// only stays straight from here on.
    fn grow(&mut self, rows: &[LogRow], tz: &Zones) {
        for r in rows {
            self.time = self.time.max(width(&local_time(r.time, tz.of(&r.channel))));
            self.channel = self.channel.max(width(&clean(&r.channel)));
            self.file = self.file.max(width(&clean(&r.file)));
        }
    }

    fn header(&self) -> String {
        let [time, channel, status, file, last] = Self::HEADER;
        format!(
            "{}  {}  {}  {}  {last}",
            pad(time, self.time),
            pad(channel, self.channel),
            pad(status, self.status),
            pad(file, self.file),
        )
    }

    fn line(&self, r: &LogRow, tz: &Zones) -> String {
        format!(
            "{}  {}  {}  {}  {}",
            pad(&local_time(r.time, tz.of(&r.channel)), self.time),
            pad(&clean(&r.channel), self.channel),
            pad(&clean(&r.status), self.status),
            pad(&clean(&r.file), self.file),
            clean(&where_and_why(r)),
        )
        .trim_end()
        .to_string()
    }
}

/// Text fit for one table cell: line breaks and tabs become spaces, other control
/// characters (escape sequences) and bidirectional overrides become U+FFFD.
pub(super) fn clean(s: &str) -> Cow<'_, str> {
    let bad = crate::diag::acts_on_display;
    if !s.chars().any(bad) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| match c {
                '\n' | '\r' | '\t' => ' ',
                c if bad(c) => '\u{FFFD}',
                c => c,
            })
            .collect(),
    )
}

/// `s` followed by spaces up to `cells` terminal cells.
pub(super) fn pad(s: &str, cells: usize) -> String {
    let w = width(s);
    let mut out = String::with_capacity(s.len() + cells.saturating_sub(w));
    out.push_str(s);
    out.extend(std::iter::repeat_n(' ', cells.saturating_sub(w)));
    out
}

/// `s` preceded by spaces up to `cells` terminal cells (for numbers).
pub(super) fn pad_left(s: &str, cells: usize) -> String {
    let w = width(s);
    let mut out: String = std::iter::repeat_n(' ', cells.saturating_sub(w)).collect();
    out.push_str(s);
    out
}

/// Terminal cells `s` takes, by a small rule instead of a full width table (the project has
/// no `unicode-width` dependency, and this is enough to keep columns straight):
/// East Asian wide and full-width characters and emoji take two cells, combining marks,
/// zero-width joiners and variation selectors none, everything else one. Emoji sequences
/// joined by U+200D count each part, as many terminals draw them.
pub(super) fn width(s: &str) -> usize {
    s.chars().map(char_width).sum()
}

fn char_width(c: char) -> usize {
    if c.is_control()
        || unicode_normalization::char::is_combining_mark(c)
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{FE00}'..='\u{FE0F}' | '\u{E0100}'..='\u{E01EF}')
    {
        return 0;
    }
    let wide = matches!(c,
        '\u{1100}'..='\u{115F}'     // Hangul Jamo leading consonants
        | '\u{2E80}'..='\u{303E}'   // CJK radicals, Kangxi, CJK symbols and punctuation
        | '\u{3041}'..='\u{33FF}'   // kana, Bopomofo, Hangul compatibility Jamo, CJK compat
        | '\u{3400}'..='\u{4DBF}'   // CJK extension A
        | '\u{4E00}'..='\u{9FFF}'   // CJK unified ideographs
        | '\u{A000}'..='\u{A4CF}'   // Yi
        | '\u{A960}'..='\u{A97F}'   // Hangul Jamo extended A
        | '\u{AC00}'..='\u{D7A3}'   // Hangul syllables
        | '\u{F900}'..='\u{FAFF}'   // CJK compatibility ideographs
        | '\u{FE10}'..='\u{FE19}'   // vertical forms
        | '\u{FE30}'..='\u{FE6F}'   // CJK compatibility forms, small forms
        | '\u{FF00}'..='\u{FF60}'   // full-width forms
        | '\u{FFE0}'..='\u{FFE6}'   // full-width signs
        | '\u{1F300}'..='\u{1F64F}' // pictographs, emoticons
        | '\u{1F680}'..='\u{1F6FF}' // transport and map symbols
        | '\u{1F900}'..='\u{1F9FF}' // supplemental symbols and pictographs
        | '\u{1FA70}'..='\u{1FAFF}' // symbols and pictographs extended A
        | '\u{20000}'..='\u{2FFFD}' // CJK extensions B and later
        | '\u{30000}'..='\u{3FFFD}' // CJK extension G and later
    );
    if wide { 2 } else { 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cjk_takes_two_cells_and_marks_none() {
        assert_eq!(width("sale.md"), 7);
        assert_eq!(width("冬季促销.md"), 11);
        assert_eq!(width("ｓａｌｅ"), 8);
        assert_eq!(width("café"), 4);
        assert_eq!(width("cafe\u{301}"), 4);
        assert_eq!(width("한국어"), 6);
        assert_eq!(pad("冬季", 6), "冬季  ");
        assert_eq!(pad_left("7", 3), "  7");
    }

    #[test]
    fn control_characters_cannot_reach_the_terminal() {
        assert_eq!(clean("a\nb\tc"), "a b c");
        assert_eq!(clean("x\u{1b}[2Jy"), "x\u{FFFD}[2Jy");
        assert_eq!(clean("\u{202E}gpj.md"), "\u{FFFD}gpj.md");
        assert!(matches!(clean("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn since_takes_spans_instants_and_dates() {
        let now: Timestamp = "2026-11-22T12:00:00Z".parse().unwrap();
        let madrid = TimeZone::get("Europe/Madrid").unwrap();
        let p = |s| parse_since(s, now, &madrid);
        assert_eq!(p("7d").unwrap(), "2026-11-15T12:00:00Z".parse().unwrap());
        assert_eq!(p("1h30m").unwrap(), "2026-11-22T10:30:00Z".parse().unwrap());
        assert_eq!(
            p("2026-11-20T09:00:00+01:00").unwrap(),
            "2026-11-20T08:00:00Z".parse().unwrap()
        );
        assert_eq!(
            p("2026-11-20").unwrap(),
            "2026-11-19T23:00:00Z".parse().unwrap()
        );
        assert!(p("7").unwrap_err().contains("unit"));
        assert!(p("last week").unwrap_err().contains("RFC 3339"));
    }
}
