//! The config file: finding it, reading it strictly, and turning it into the typed [`Config`]
//! the rest of cadenced uses, with the defaults applied.
//!
//! Strict on purpose: an unknown key, a wrong type or a value that makes no sense is an
//! error naming the file, the line and the fix, and [`parse`] reports every problem it can
//! find in one go, so a user fixes a config in one round instead of one error per run. The
//! document is walked by hand over `toml`'s spanned tree rather than through serde derive:
//! that is what lets each error point at its line and lets several errors be collected.
//!
//! What this module must not do: read credentials while parsing (only
//! [`check_credentials`] does, for `cadenced check`; the daemon reads them when it starts a
//! channel), print anything, read the clock, or ever put a secret's value into a message or
//! a source snippet.

pub mod duration;
pub mod zones;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use jiff::SignedDuration;
use jiff::tz::TimeZone;
use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

use crate::cadence::{ChannelRules, Schedule, Slot};
use crate::diag::{Diagnostic, did_you_mean};
use crate::platforms::keys::{Key as KeySpec, Kind, Need, Value as KeyValue};
use crate::platforms::{Limits, Platform, registry};

pub use crate::platforms::keys::Settings;
pub use crate::secret::{Secret, SecretRef};

#[derive(Debug, Clone)]
pub struct Config {
    /// The config file itself; relative paths inside it are relative to its folder.
    pub path: PathBuf,
    pub queue: PathBuf,
    pub database: PathBuf,
    pub outbox: PathBuf,
    pub log_level: String,
    /// Sorted by name.
    pub channels: Vec<Channel>,
}

#[derive(Debug, Clone)]
pub struct Channel {
    pub name: String,
    pub platform: Platform,
    pub rules: ChannelRules,
    pub dry_run: bool,
    /// Takes part in the cross-platform variation rule.
    pub variation: bool,
    /// The platform's keys, parsed by their declaration.
    pub settings: Settings,
    /// The platform's limits for this channel: from its keys, and where the platform sets
    /// them on the server (a Mastodon instance's text limit), what the daemon learned.
    pub limits: Limits,
}

impl Channel {
    pub fn limits(&self) -> Limits {
        self.limits.clone()
    }

    /// The channel's credentials, by config key.
    pub fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
        self.settings.secrets().collect()
    }
}

impl Channel {
    /// Looks a channel up by name in a config's sorted list.
    pub fn find<'c>(channels: &'c [Channel], name: &str) -> Option<&'c Channel> {
        channels
            .binary_search_by(|c| c.name.as_str().cmp(name))
            .ok()
            .map(|i| &channels[i])
    }
}

/// A config that parsed and made sense, with what `check` should warn about.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
}

/// Where the system-wide config lives when nothing else is given.
pub const SYSTEM_CONFIG: &str = "/etc/cadenced/cadenced.toml";
/// Where a working copy's config lives, relative to the current directory.
pub const LOCAL_CONFIG: &str = "config/cadenced.toml";

pub const DEFAULT_LOG_LEVEL: &str = "info";
pub const LOG_LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];

pub const TOP_KEYS: [&str; 6] = [
    "queue",
    "database",
    "outbox",
    "log_level",
    "defaults",
    "channels",
];
/// Channel keys that `[defaults]` may set for every channel.
pub const COMMON_KEYS: [&str; 10] = [
    "timezone",
    "slots",
    "max_per_day",
    "min_gap",
    "unique_window",
    "catch_up",
    "similarity",
    "paused",
    "dry_run",
    "variation",
];

/// The names of the keys only channels of `platform` take (never inherited from
/// `[defaults]`: they name one account, so sharing them would be a mistake).
pub fn platform_keys(platform: Platform) -> impl Iterator<Item = &'static str> {
    platform.keys().iter().map(|k| k.name)
}

/// Every key that holds a credential on some platform, by the platforms' declarations.
fn secret_keys() -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = Platform::all()
        .flat_map(|p| p.keys().iter())
        .filter(|k| k.kind == Kind::Secret)
        .map(|k| k.name)
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Finds the config file: `--config`, else `$CADENCED_CONFIG`, else
/// `./config/cadenced.toml`, else `/etc/cadenced/cadenced.toml`. A path given explicitly
/// (flag or variable) must exist: falling back to another file would run the daemon with a
/// config the user did not ask for.
// The signature is shared with the CLI; the error is built once, at start-up, so its size
// does not matter (clippy's result_large_err is about hot paths).
#[allow(clippy::result_large_err)]
pub fn locate(
    explicit: Option<&Path>,
    env: Option<&OsStr>,
    cwd: &Path,
) -> Result<PathBuf, Diagnostic> {
    locate_in(explicit, env, cwd, Path::new(SYSTEM_CONFIG))
}

#[allow(clippy::result_large_err)]
fn locate_in(
    explicit: Option<&Path>,
    env: Option<&OsStr>,
    cwd: &Path,
    system: &Path,
) -> Result<PathBuf, Diagnostic> {
    // An existence check that cannot say (a folder we may not search) counts as found, so
    // that `load` reports the real reason instead of "not found".
    let exists = |p: &Path| p.try_exists().unwrap_or(true);
    let given = |path: PathBuf, from: &str| {
        if exists(&path) {
            Ok(path)
        } else {
            Err(Diagnostic::error(&path, format!("config file not found (given by {from})"))
                .with_help(format!("check the path given by {from}; without it cadenced looks for ./{LOCAL_CONFIG} and then {}", system.display())))
        }
    };
    if let Some(path) = explicit {
        return given(cwd.join(path), "--config");
    }
    if let Some(value) = env.filter(|v| !v.is_empty()) {
        return given(cwd.join(value), "$CADENCED_CONFIG");
    }
    let local = cwd.join(LOCAL_CONFIG);
    if exists(&local) {
        return Ok(local);
    }
    if exists(system) {
        return Ok(system.to_path_buf());
    }
    Err(Diagnostic::error(
        &local,
        format!(
            "no config file: there is neither ./{LOCAL_CONFIG} here nor {}",
            system.display()
        ),
    )
    .with_help(format!(
        "run `cadenced init` to write one here (a commented config and queue folders), or edit {} if the package is installed; to use a config elsewhere, pass --config PATH",
        system.display()
    )))
}

/// Reads and parses the config file at `path`.
pub fn load(path: &Path) -> Result<Loaded, Vec<Diagnostic>> {
    let text = read_text(path).map_err(|d| vec![d])?;
    parse(path, &text)
}

#[allow(clippy::result_large_err)]
fn read_text(path: &Path) -> Result<String, Diagnostic> {
    let cannot = |e: std::io::Error| {
        Diagnostic::error(path, format!("cannot read the config file: {e}"))
            .with_help("check the path and that this user may read the file; --config PATH chooses another file")
    };
    // Refuse FIFOs and devices before opening: reading one could block forever.
    let meta = std::fs::metadata(path).map_err(cannot)?;
    if !meta.is_file() {
        return Err(
            Diagnostic::error(path, "the config path is not a regular file")
                .with_help("point --config at the TOML file itself"),
        );
    }
    let bytes = std::fs::read(path).map_err(cannot)?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
        Diagnostic::error(path, "the config file is not UTF-8 text")
            .at_line(line)
            .with_help("save the file as UTF-8")
    })
}

/// Parses config `text` read from `path`: every error it can find, or the config with its
/// warnings. Pure apart from naming `path` in diagnostics and resolving paths against its
/// folder; it reads no other file.
pub fn parse(path: &Path, text: &str) -> Result<Loaded, Vec<Diagnostic>> {
    let mut parser = Parser {
        file: path,
        dir: path.parent().unwrap_or(Path::new("")),
        text,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let (root, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        // Checking the meaning of a half-parsed document would add noise, not help; so
        // would the parser's follow-up errors, so each line reports only its first one.
        let mut lines = std::collections::BTreeSet::new();
        for e in syntax_errors {
            let line = parser.line_of(e.span().unwrap_or(0..0).start);
            if lines.insert(line) {
                parser.syntax_error(&e);
            }
        }
        return Err(by_line(parser.errors));
    }
    let config = parser.config(root.get_ref());
    match config {
        Some(config) if parser.errors.is_empty() => Ok(Loaded {
            config,
            warnings: by_line(parser.warnings),
        }),
        _ => Err(by_line(parser.errors)),
    }
}

/// Diagnostics in file order; those without a line (about the whole file) last.
fn by_line(mut diags: Vec<Diagnostic>) -> Vec<Diagnostic> {
    diags.sort_by_key(|d| (d.line.is_none(), d.line, d.column));
    diags
}

/// A channel value from `[defaults]` or the channel itself, with where it was written.
#[derive(Debug, Clone, Default)]
enum Field<T> {
    #[default]
    Absent,
    /// Written but wrong; already reported, so nothing that depends on it reports again.
    Invalid,
    Set(T, Range<usize>),
}

impl<T: Clone> Field<T> {
    /// This channel's own value, else the inherited one.
    fn or(self, inherited: &Field<T>) -> Field<T> {
        match self {
            Field::Absent => inherited.clone(),
            own => own,
        }
    }

    fn value_or(&self, default: T) -> T {
        match self {
            Field::Set(v, _) => v.clone(),
            Field::Absent | Field::Invalid => default,
        }
    }
}

/// The keys a channel may inherit from `[defaults]`.
#[derive(Debug, Clone, Default)]
struct Common {
    timezone: Field<TimeZone>,
    slots: Field<Vec<Slot>>,
    max_per_day: Field<u32>,
    min_gap: Field<SignedDuration>,
    unique_window: Field<SignedDuration>,
    catch_up: Field<SignedDuration>,
    similarity: Field<f64>,
    paused: Field<bool>,
    dry_run: Field<bool>,
    variation: Field<bool>,
}

impl Common {
    fn or(self, inherited: &Common) -> Common {
        Common {
            timezone: self.timezone.or(&inherited.timezone),
            slots: self.slots.or(&inherited.slots),
            max_per_day: self.max_per_day.or(&inherited.max_per_day),
            min_gap: self.min_gap.or(&inherited.min_gap),
            unique_window: self.unique_window.or(&inherited.unique_window),
            catch_up: self.catch_up.or(&inherited.catch_up),
            similarity: self.similarity.or(&inherited.similarity),
            paused: self.paused.or(&inherited.paused),
            dry_run: self.dry_run.or(&inherited.dry_run),
            variation: self.variation.or(&inherited.variation),
        }
    }
}

type Key<'i> = Spanned<DeString<'i>>;
type Value<'i> = Spanned<DeValue<'i>>;

/// The channel being read, for messages.
struct ChannelAt<'a> {
    name: &'a str,
    platform: Platform,
    /// The channel's name in its header: where "missing key" errors point.
    span: Range<usize>,
}

struct Parser<'a> {
    file: &'a Path,
    dir: &'a Path,
    text: &'a str,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl<'a> Parser<'a> {
    /// Points `d` at `span`, with the source line as a snippet unless that line may hold a
    /// secret: then only the line number, so a mistyped token never reaches a terminal or a
    /// log through an error message.
    fn at(&self, d: Diagnostic, span: Range<usize>) -> Diagnostic {
        let start = span.start.min(self.text.len());
        let line_start = self.text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.text[start..]
            .find('\n')
            .map_or(self.text.len(), |i| start + i);
        if may_hold_secret(&self.text[line_start..line_end]) {
            d.at_line(self.line_of(start))
        } else {
            d.at_span(self.text, span)
        }
    }

    fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    fn error(&mut self, span: Range<usize>, message: impl Into<String>, help: impl Into<String>) {
        let d = Diagnostic::error(self.file, message).with_help(help);
        let d = self.at(d, span);
        self.errors.push(d);
    }

    fn syntax_error(&mut self, e: &toml::de::Error) {
        let span = e.span().unwrap_or(0..0);
        let mut message = format!("invalid TOML: {}", e.message());
        let help = if e.message() == "duplicate key" {
            let key = self.text.get(span.clone()).unwrap_or("").trim();
            message = format!("invalid TOML: duplicate key `{key}`");
            format!(
                "each key and each [table] may appear once; remove or rename the second `{key}`"
            )
        } else if e.message().contains("quoted") {
            "put text values in double quotes, e.g. `timezone = \"Europe/Madrid\"`".to_string()
        } else {
            "fix the TOML syntax at the marked spot (https://toml.io describes it)".to_string()
        };
        self.error(span, message, help);
    }

    fn type_error(&mut self, key: &str, want: &str, value: &Value<'_>, example: &str) {
        self.error(
            value.span(),
            format!(
                "`{key}` must be {want}, not {}",
                article(value.get_ref().type_str())
            ),
            format!("write {example}"),
        );
    }

    fn config(&mut self, root: &DeTable<'_>) -> Option<Config> {
        let mut queue = self.dir.join("queue");
        let mut database = self.dir.join("state/cadenced.sqlite");
        let mut outbox = self.dir.join("outbox");
        let mut log_level = DEFAULT_LOG_LEVEL.to_string();
        let mut defaults = Common::default();
        let mut channels = None;
        for (key, value) in root.iter() {
            match key.get_ref().as_ref() {
                "queue" => queue = self.path(key, value).unwrap_or(queue),
                "database" => database = self.path(key, value).unwrap_or(database),
                "outbox" => outbox = self.path(key, value).unwrap_or(outbox),
                "log_level" => log_level = self.log_level(value).unwrap_or(log_level),
                "defaults" => match value.get_ref() {
                    DeValue::Table(table) => defaults = self.defaults(table),
                    _ => self.type_error(
                        "defaults",
                        "a table",
                        value,
                        "`[defaults]` as a table header",
                    ),
                },
                "channels" => match value.get_ref() {
                    DeValue::Table(table) => channels = Some((key.span(), Some(table))),
                    _ => {
                        self.type_error(
                            "channels",
                            "a table",
                            value,
                            "one `[channels.<name>]` table per channel",
                        );
                        channels = Some((key.span(), None));
                    }
                },
                _ => self.unknown_top_key(key),
            }
        }

        let no_channels = "the config has no channels";
        let no_channels_help = "add one table per account, e.g. `[channels.shop-outbox]` with `platform = \"outbox\"` (writes posts to the outbox folder; needs no account)";
        let mut result = Vec::new();
        let mut busy: BTreeMap<(usize, usize), (u32, Vec<String>)> = BTreeMap::new();
        match channels {
            None => self
                .errors
                .push(Diagnostic::error(self.file, no_channels).with_help(no_channels_help)),
            // Not a table: already reported.
            Some((_, None)) => {}
            Some((span, Some(table))) if table.is_empty() => {
                self.error(span, no_channels, no_channels_help)
            }
            Some((_, Some(table))) => {
                for (name, value) in table.iter() {
                    if let Some((channel, cap)) = self.channel(name, value, &defaults) {
                        if let Some((max, span)) = cap.filter(|(max, _)| *max > 2) {
                            let entry = busy
                                .entry((span.start, span.end))
                                .or_insert((max, Vec::new()));
                            entry.1.push(channel.name.clone());
                        }
                        result.push(channel);
                    }
                }
            }
        }

        for ((start, end), (max, names)) in busy {
            let names = names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let plural = if names.contains(',') {
                "channels"
            } else {
                "channel"
            };
            let d = Diagnostic::warning(self.file, format!("{plural} {names} may publish {max} posts a day, more than 2"))
                .with_help("the research says to earn it: post 1-2 unique posts a day, raise the rate only when engagement shows it works, and scale back when posts are ignored");
            let d = self.at(d, start..end);
            self.warnings.push(d);
        }

        result.sort_by(|a, b| a.name.cmp(&b.name));
        Some(Config {
            path: self.file.to_path_buf(),
            queue,
            database,
            outbox,
            log_level,
            channels: result,
        })
    }

    fn unknown_top_key(&mut self, key: &Key<'_>) {
        let name = key.get_ref().as_ref();
        let help = if COMMON_KEYS.contains(&name) {
            format!(
                "`{name}` is a channel setting: put it under [defaults] (for every channel) or under a [channels.<name>] table"
            )
        } else if name == "platform" || Platform::all().any(|p| platform_keys(p).any(|n| n == name))
        {
            format!("`{name}` belongs to one channel: put it under its [channels.<name>] table")
        } else if let Some(best) = did_you_mean(name, TOP_KEYS) {
            format!("did you mean `{best}`?")
        } else {
            format!("the top level takes {}", list(&TOP_KEYS))
        };
        self.error(key.span(), format!("unknown key `{name}`"), help);
    }

    /// A key in `[defaults]` or a channel that belongs at the top level: TOML puts every
    /// key after a `[table]` header into that table, a common surprise.
    fn misplaced_top_key(&mut self, key: &Key<'_>, table: &str) -> bool {
        let name = key.get_ref().as_ref();
        if !TOP_KEYS.contains(&name) {
            return false;
        }
        self.error(
            key.span(),
            format!("`{name}` is not a key of {table}"),
            format!("`{name}` is a top-level key: move it above the first [table] header"),
        );
        true
    }

    fn path(&mut self, key: &Key<'_>, value: &Value<'_>) -> Option<PathBuf> {
        let name = key.get_ref().as_ref();
        match value.get_ref().as_str() {
            Some("") => {
                self.error(value.span(), format!("`{name}` is empty"), format!("write a path, relative to the config file's folder, e.g. `{name} = \"../{name}\"`"));
                None
            }
            Some(path) => Some(lexical_join(self.dir, Path::new(path))),
            None => {
                self.type_error(
                    name,
                    "a path string",
                    value,
                    &format!("`{name} = \"../{name}\"` (relative to the config file's folder)"),
                );
                None
            }
        }
    }

    fn log_level(&mut self, value: &Value<'_>) -> Option<String> {
        let Some(level) = value.get_ref().as_str() else {
            self.type_error("log_level", "a string", value, "`log_level = \"info\"`");
            return None;
        };
        if LOG_LEVELS.contains(&level) {
            return Some(level.to_string());
        }
        let lower = level.to_lowercase();
        let help = match did_you_mean(&lower, LOG_LEVELS)
            .or_else(|| (lower == "warning").then_some("warn"))
        {
            Some(best) => format!("did you mean `{best}`? Levels: {}", list(&LOG_LEVELS)),
            None => format!("use one of {}", list(&LOG_LEVELS)),
        };
        self.error(value.span(), format!("unknown log level `{level}`"), help);
        None
    }

    fn defaults(&mut self, table: &DeTable<'_>) -> Common {
        let mut common = Common::default();
        for (key, value) in table.iter() {
            let name = key.get_ref().as_ref();
            if COMMON_KEYS.contains(&name) {
                self.common_key(&mut common, key, value);
            } else if name == "platform" {
                self.error(key.span(), "`platform` cannot be set in [defaults]", "each channel names its own platform: set `platform` in every [channels.<name>] table");
            } else if let Some(owners) = owners_of(name) {
                self.error(
                    key.span(),
                    format!("`{name}` cannot be set in [defaults]: it is a key of {owners} channels"),
                    format!("platform keys belong to one account: set `{name}` in each [channels.<name>] table that needs it"),
                );
            } else if !self.misplaced_top_key(key, "[defaults]") {
                let help = match did_you_mean(name, COMMON_KEYS) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None => format!("[defaults] takes {}", list(&COMMON_KEYS)),
                };
                self.error(
                    key.span(),
                    format!("unknown key `{name}` in [defaults]"),
                    help,
                );
            }
        }
        common
    }

    /// Reads one of [`COMMON_KEYS`] into `common`.
    fn common_key(&mut self, common: &mut Common, key: &Key<'_>, value: &Value<'_>) {
        let name = key.get_ref().as_ref();
        let span = value.span();
        match name {
            "timezone" => common.timezone = to_field(self.timezone(value), span),
            "slots" => common.slots = to_field(self.slots(value), span),
            "max_per_day" => common.max_per_day = to_field(self.max_per_day(value), span),
            "min_gap" => common.min_gap = to_field(self.duration(name, value), span),
            "unique_window" => common.unique_window = to_field(self.duration(name, value), span),
            "catch_up" => common.catch_up = to_field(self.duration(name, value), span),
            "similarity" => common.similarity = to_field(self.similarity(value), span),
            "paused" => common.paused = to_field(self.boolean(name, value), span),
            "dry_run" => common.dry_run = to_field(self.boolean(name, value), span),
            "variation" => common.variation = to_field(self.boolean(name, value), span),
            _ => unreachable!("`{name}` is in COMMON_KEYS but has no reader"),
        }
    }

    fn timezone(&mut self, value: &Value<'_>) -> Option<TimeZone> {
        let Some(name) = value.get_ref().as_str() else {
            self.type_error(
                "timezone",
                "an IANA time zone name",
                value,
                "`timezone = \"Europe/Madrid\"`",
            );
            return None;
        };
        if let Ok(tz) = TimeZone::get(name) {
            return Some(tz);
        }
        let help = match zones::suggest(name, &zones_in(self.text)) {
            Some(zones::Suggestion { zone, why: Some(why) }) => {
                format!("did you mean `{zone}` ({why})? Zones are named after one city per region; `timedatectl list-timezones` lists them")
            }
            Some(zones::Suggestion { zone, why: None }) => format!("did you mean `{zone}`?"),
            None => "write an IANA time zone name: zones are named after one city per region, such as `Europe/Madrid` for mainland Spain or `America/New_York` for the US east coast (`timedatectl list-timezones` lists them)".to_string(),
        };
        self.error(value.span(), format!("unknown time zone `{name}`"), help);
        None
    }

    fn slots(&mut self, value: &Value<'_>) -> Option<Vec<Slot>> {
        let DeValue::Array(items) = value.get_ref() else {
            let example = match value.get_ref().as_str() {
                Some(one) => format!("`slots = [\"{one}\"]`"),
                None => "`slots = [\"10:00\", \"Mon-Fri 17:30\"]`".to_string(),
            };
            self.type_error("slots", "an array of slot strings", value, &example);
            return None;
        };
        let mut slots = Vec::new();
        let mut ok = true;
        for item in items.iter() {
            let Some(spec) = item.get_ref().as_str() else {
                self.type_error("slots", "an array of strings", item, "each slot as a string, e.g. `\"10:00\"`, `\"Mon-Fri 09:30\"` or `\"30 9 * * 1-5\"`");
                ok = false;
                continue;
            };
            match Slot::parse(spec) {
                Ok(slot) => slots.push(slot),
                Err(e) => {
                    // SlotError messages name the slot already.
                    self.error(item.span(), e.message, e.help);
                    ok = false;
                }
            }
        }
        ok.then_some(slots)
    }

    fn max_per_day(&mut self, value: &Value<'_>) -> Option<u32> {
        let Some(n) = integer(value.get_ref()) else {
            self.type_error("max_per_day", "a whole number", value, "`max_per_day = 2`");
            return None;
        };
        match u32::try_from(n) {
            Ok(0) => {
                self.error(value.span(), "`max_per_day = 0` would never publish", "to stop a channel without removing it, set `paused = true`; otherwise use 1 or more (2 is the default)");
                None
            }
            Ok(n) => Some(n),
            Err(_) => {
                self.error(value.span(), format!("`max_per_day = {n}` is out of range"), "use a small positive number: 1 or 2 posts a day is what the research recommends");
                None
            }
        }
    }

    fn duration(&mut self, key: &str, value: &Value<'_>) -> Option<SignedDuration> {
        let written = match value.get_ref() {
            DeValue::String(s) => s.to_string(),
            // A bare number is refused with the same words as a unit-less string.
            DeValue::Integer(i) => i.to_string(),
            _ => {
                self.type_error(
                    key,
                    "a duration string",
                    value,
                    &format!("`{key} = \"3h\"`"),
                );
                return None;
            }
        };
        match duration::parse(&written) {
            Ok(d) => Some(d),
            Err(why) => {
                self.error(
                    value.span(),
                    format!("invalid duration \"{written}\" for `{key}`: {why}"),
                    duration::FORM,
                );
                None
            }
        }
    }

    fn similarity(&mut self, value: &Value<'_>) -> Option<f64> {
        let number = match value.get_ref() {
            DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
            DeValue::Integer(_) => integer(value.get_ref()).map(|i| i as f64),
            _ => {
                self.type_error(
                    "similarity",
                    "a number between 0 and 1",
                    value,
                    "`similarity = 0.8`",
                );
                return None;
            }
        };
        match number {
            Some(x) if (0.0..=1.0).contains(&x) => Some(x),
            _ => {
                let written = &self.text[value.span()];
                self.error(
                    value.span(),
                    format!("`similarity = {written}` is outside 0 to 1"),
                    "write a number from 0 to 1: two texts whose Jaccard similarity reaches it count as near-duplicates (0.8 is the default; lower holds more posts)",
                );
                None
            }
        }
    }

    fn boolean(&mut self, key: &str, value: &Value<'_>) -> Option<bool> {
        let b = value.get_ref().as_bool();
        if b.is_none() {
            self.type_error(
                key,
                "true or false",
                value,
                &format!("`{key} = true` or `{key} = false` (without quotes)"),
            );
        }
        b
    }

    /// Reads one channel; `None` if it has errors (all of them reported). The second value
    /// is the effective `max_per_day` and where it was written, for the "earn it" warning.
    #[allow(clippy::type_complexity)]
    fn channel(
        &mut self,
        name: &Key<'_>,
        value: &Value<'_>,
        defaults: &Common,
    ) -> Option<(Channel, Option<(u32, Range<usize>)>)> {
        let errors_before = self.errors.len();
        let channel_name = name.get_ref().as_ref();
        if !is_channel_name(channel_name) {
            self.error(
                name.span(),
                format!("channel name `{channel_name}` is not allowed"),
                format!(
                    "channel names are lowercase letters, digits and `-`, starting with a letter or digit (the name is also its queue folder), e.g. `{}`",
                    suggest_channel_name(channel_name)
                ),
            );
        }
        let DeValue::Table(table) = value.get_ref() else {
            self.type_error(
                &format!("channels.{channel_name}"),
                "a table",
                value,
                &format!("`[channels.{channel_name}]` followed by its keys"),
            );
            return None;
        };
        let resolved = self.platform(name, table);
        let platform = resolved.ok();

        let mut own = Common::default();
        for (key, value) in table.iter() {
            let k = key.get_ref().as_ref();
            if k == "platform" {
                continue;
            }
            if COMMON_KEYS.contains(&k) {
                self.common_key(&mut own, key, value);
            } else if resolved == Err(true) {
                // A planned platform's keys are unknown here; its error says enough.
            } else if !platform.is_some_and(|p| platform_keys(p).any(|n| n == k)) {
                self.unknown_channel_key(key, channel_name, platform);
            }
        }
        let common = own.or(defaults);

        let timezone = match &common.timezone {
            Field::Set(tz, _) => Some(tz.clone()),
            Field::Invalid => None,
            Field::Absent => {
                self.error(
                    name.span(),
                    format!("channel `{channel_name}` has no time zone"),
                    format!("slots and daily caps are counted in local time: add `timezone = \"Europe/Madrid\"` (an IANA name) to [defaults] or to [channels.{channel_name}]"),
                );
                None
            }
        };

        let platform = platform?;
        let at = ChannelAt {
            name: channel_name,
            platform,
            span: name.span(),
        };
        let settings = self.settings(&at, table);
        if self.errors.len() > errors_before {
            return None;
        }
        let (timezone, settings) = (timezone?, settings?);

        let slots = match &common.slots {
            Field::Set(slots, _) if !slots.is_empty() => slots.clone(),
            _ => {
                let d = Diagnostic::warning(self.file, format!("channel `{channel_name}` has no slots: only posts with `at` will be published"))
                    .with_help(format!("add `slots = [\"10:00\", \"Mon-Fri 17:30\"]` to [defaults] or to [channels.{channel_name}]"));
                let d = self.at(d, name.span());
                self.warnings.push(d);
                Vec::new()
            }
        };
        let mut rules = ChannelRules::new(timezone, Schedule::new(slots));
        rules.max_per_day = common
            .max_per_day
            .value_or(ChannelRules::DEFAULT_MAX_PER_DAY);
        rules.min_gap = common.min_gap.value_or(ChannelRules::DEFAULT_MIN_GAP);
        rules.unique_window = common
            .unique_window
            .value_or(ChannelRules::DEFAULT_UNIQUE_WINDOW);
        rules.catch_up = common.catch_up.value_or(ChannelRules::DEFAULT_CATCH_UP);
        rules.similarity = common.similarity.value_or(ChannelRules::DEFAULT_SIMILARITY);
        rules.paused = common.paused.value_or(false);
        let cap = match &common.max_per_day {
            Field::Set(n, span) => Some((*n, span.clone())),
            _ => None,
        };
        let channel = Channel {
            name: channel_name.to_string(),
            platform,
            rules,
            dry_run: common.dry_run.value_or(false),
            variation: common.variation.value_or(platform.varies_by_default()),
            limits: platform.limits(&settings),
            settings,
        };
        Some((channel, cap))
    }

    /// The channel's platform; errors are reported here. `Err(true)` marks a platform this
    /// version plans but does not support, whose keys it cannot know.
    fn platform(&mut self, name: &Key<'_>, table: &DeTable<'_>) -> Result<Platform, bool> {
        let names: Vec<&str> = Platform::all().map(Platform::name).collect();
        let supported = list(&names);
        let channel = name.get_ref().as_ref();
        let Some(value) = table.get("platform") else {
            self.error(name.span(), format!("channel `{channel}` has no `platform`"), format!("add `platform = \"…\"` to [channels.{channel}]; supported platforms: {supported}"));
            return Err(false);
        };
        let Some(written) = value.get_ref().as_str() else {
            self.type_error(
                "platform",
                "a platform name",
                value,
                &format!("one of {supported} in quotes, e.g. `platform = \"mastodon\"`"),
            );
            return Err(false);
        };
        if let Some(platform) = Platform::parse(written) {
            return Ok(platform);
        }
        let lower = written.to_lowercase();
        if let Some(planned) = registry::PLANNED.iter().find(|p| **p == lower) {
            self.error(
                value.span(),
                format!("platform `{planned}` is not supported yet by this version"),
                format!("supported platforms: {supported}; meanwhile an `exec` or `webhook` channel can hand posts to your own program"),
            );
            return Err(true);
        } else if let Some(p) = Platform::parse(&lower) {
            self.error(
                value.span(),
                format!("unknown platform `{written}`"),
                format!("platform names are lowercase: did you mean `{p}`?"),
            );
        } else {
            let help = match did_you_mean(&lower, names.iter().copied()) {
                Some(best) => format!("did you mean `{best}`? Supported platforms: {supported}"),
                None => format!("supported platforms: {supported}"),
            };
            self.error(value.span(), format!("unknown platform `{written}`"), help);
        }
        Err(false)
    }

    /// A key in a channel that neither its platform nor the common keys know. With no valid
    /// platform, keys of any platform are let through: which ones are wrong depends on the
    /// platform the user meant, and that error is already reported.
    fn unknown_channel_key(&mut self, key: &Key<'_>, channel: &str, platform: Option<Platform>) {
        let name = key.get_ref().as_ref();
        let owners: Vec<&str> = Platform::all()
            .filter(|p| platform_keys(*p).any(|n| n == name))
            .map(Platform::name)
            .collect();
        match (platform, owners_of(name)) {
            (None, Some(_)) => {}
            (Some(platform), Some(owners_list)) => {
                self.error(
                    key.span(),
                    format!("`{name}` is not a key of {platform} channels; it belongs to {owners_list} channels"),
                    format!("remove it from [channels.{channel}], or set `platform = \"{}\"` if this account is on that platform", owners[0]),
                );
            }
            _ => {
                if self.misplaced_top_key(key, &format!("[channels.{channel}]")) {
                    return;
                }
                let mut allowed: Vec<&str> = vec!["platform"];
                allowed.extend(COMMON_KEYS);
                if let Some(p) = platform {
                    allowed.extend(platform_keys(p));
                }
                let help = match did_you_mean(name, allowed.iter().copied()) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None => match platform {
                        Some(p) => format!("{p} channels take {}", list(&allowed)),
                        None => {
                            format!("channels take {} and their platform's keys", list(&allowed))
                        }
                    },
                };
                self.error(
                    key.span(),
                    format!("unknown key `{name}` in [channels.{channel}]"),
                    help,
                );
            }
        }
    }

    /// The channel's platform keys, each parsed by its declared kind; a required key that is
    /// missing gets its example; then the platform's checks of keys that go together.
    fn settings(&mut self, at: &ChannelAt<'_>, table: &DeTable<'_>) -> Option<Settings> {
        let errors_before = self.errors.len();
        let mut settings = Settings::new();
        for key in at.platform.keys() {
            let value = match (table.get(key.name), key.need) {
                (Some(value), _) => self.key_value(key, value),
                (None, Need::Required) => {
                    self.missing(at, key);
                    None
                }
                (None, Need::Optional) => None,
                (None, Need::Default(default)) => default_value(key, default),
            };
            if let Some(value) = value {
                settings.insert(key.name, value);
            }
        }
        if self.errors.len() > errors_before {
            return None;
        }
        for problem in at.platform.check_keys(&settings) {
            let span = problem
                .key
                .and_then(|k| table.get(k))
                .map_or(at.span.clone(), Value::span);
            self.error(span, problem.message, problem.help);
        }
        (self.errors.len() == errors_before).then_some(settings)
    }

    fn missing(&mut self, at: &ChannelAt<'_>, key: &KeySpec) {
        self.error(
            at.span.clone(),
            format!(
                "channel `{}` ({} platform) is missing `{}`",
                at.name, at.platform, key.name
            ),
            format!(
                "add {} to [channels.{}]{}",
                key.example_line(at.name),
                at.name,
                if key.about.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", key.about)
                }
            ),
        );
    }

    /// One key's value, parsed and checked by its kind.
    fn key_value(&mut self, key: &KeySpec, value: &Value<'_>) -> Option<KeyValue> {
        let name = key.name;
        match key.kind {
            Kind::Url => self.url(name, value).map(KeyValue::Url),
            Kind::Secret => match SecretRef::from_toml(name, value.get_ref(), self.dir) {
                Ok(r) => Some(KeyValue::Secret(r)),
                Err(e) => {
                    let d = Diagnostic::error(self.file, e.message).with_help(e.help);
                    // A literal is (or may be) the secret: name its line, never show it.
                    let d = if e.literal {
                        d.at_line(self.line_of(value.span().start))
                    } else {
                        self.at(d, value.span())
                    };
                    self.errors.push(d);
                    None
                }
            },
            Kind::Handle => self.handle(key, value).map(KeyValue::Text),
            Kind::Id => self.id(key, value).map(KeyValue::Text),
            Kind::Integer { min, max } => self.bounded_integer(key, value, min, max),
            Kind::Duration { min_secs } => self.duration(name, value).and_then(|d| {
                if d < SignedDuration::from_secs(min_secs) {
                    self.error(
                        value.span(),
                        format!("`{name}` must be at least {min_secs} s"),
                        format!("write e.g. `{name} = {}`", key.example),
                    );
                    None
                } else {
                    Some(KeyValue::Duration(d))
                }
            }),
            Kind::Argv => self.command(key, value).map(KeyValue::Argv),
        }
    }

    fn bounded_integer(
        &mut self,
        key: &KeySpec,
        value: &Value<'_>,
        min: i64,
        max: i64,
    ) -> Option<KeyValue> {
        let name = key.name;
        match integer(value.get_ref()) {
            Some(n) if (min..=max).contains(&n) => Some(KeyValue::Integer(n)),
            Some(_) => {
                self.error(
                    value.span(),
                    format!("`{name}` must be between {min} and {max}"),
                    format!("write e.g. `{name} = {}`{}", key.example, about(key)),
                );
                None
            }
            None => {
                self.type_error(
                    name,
                    "a whole number",
                    value,
                    &format!("`{name} = {}`", key.example),
                );
                None
            }
        }
    }

    fn id(&mut self, key: &KeySpec, value: &Value<'_>) -> Option<String> {
        let name = key.name;
        match value.get_ref() {
            DeValue::String(s) if !s.trim().is_empty() && !s.contains(char::is_whitespace) => {
                Some(s.to_string())
            }
            DeValue::String(_) => {
                self.error(
                    value.span(),
                    format!("`{name}` is empty or has spaces in it"),
                    format!(
                        "write the identifier the platform gave, e.g. `{name} = {}`",
                        key.example
                    ),
                );
                None
            }
            // Ids are numbers in some platforms' pages; they are sent as strings.
            DeValue::Integer(i) => Some(i.as_str().to_string()),
            _ => {
                self.type_error(
                    name,
                    "a string",
                    value,
                    &format!("`{name} = {}`", key.example),
                );
                None
            }
        }
    }

    fn url(&mut self, key: &str, value: &Value<'_>) -> Option<String> {
        let Some(written) = value.get_ref().as_str() else {
            self.type_error(
                key,
                "a URL string",
                value,
                &format!("`{key} = \"https://…\"`"),
            );
            return None;
        };
        match check_url(written) {
            Ok(()) => Some(written.to_string()),
            Err(UrlProblem::Password) => {
                let d = Diagnostic::error(self.file, format!("`{key}` carries a password in the URL"))
                    .with_help("remove the user and password from the URL; credentials go in the channel's credential keys, never in the config");
                self.errors
                    .push(d.at_line(self.line_of(value.span().start)));
                None
            }
            Err(UrlProblem::Other { message, help }) => {
                self.error(value.span(), format!("`{key}`: {message}"), help);
                None
            }
        }
    }

    fn handle(&mut self, key: &KeySpec, value: &Value<'_>) -> Option<String> {
        let name = key.name;
        match value.get_ref().as_str() {
            None => {
                self.type_error(
                    name,
                    "a string",
                    value,
                    &format!("`{name} = {}`", key.example),
                );
                None
            }
            Some("") => {
                self.error(
                    value.span(),
                    format!("`{name}` is empty"),
                    format!(
                        "write the account's handle, e.g. `{name} = {}`",
                        key.example
                    ),
                );
                None
            }
            Some(h) if h.starts_with('@') => {
                self.error(
                    value.span(),
                    format!("`{name}` starts with `@`: `{h}`"),
                    format!("write it without the `@`: `{name} = \"{}\"`", &h[1..]),
                );
                None
            }
            Some(h) if h.contains(char::is_whitespace) => {
                self.error(
                    value.span(),
                    format!("`{name}` has spaces in it: `{h}`"),
                    format!(
                        "write the account's handle, e.g. `{name} = {}`",
                        key.example
                    ),
                );
                None
            }
            Some(h) => Some(h.to_string()),
        }
    }

    fn command(&mut self, key: &KeySpec, value: &Value<'_>) -> Option<Vec<String>> {
        let name = key.name;
        const HELP: &str = "cadenced runs the program directly, without a shell; write the program and each argument as one string, e.g. `command = [\"/usr/local/bin/publish\", \"--channel\", \"shop\"]`";
        let items = match value.get_ref() {
            DeValue::Array(items) => items,
            DeValue::String(line) => {
                // Splitting a line with shell syntax in it would suggest a wrong vector
                // (a pipe as an argument); such a line belongs in a script.
                let help = if line
                    .contains(['|', '&', ';', '<', '>', '$', '`', '\'', '"', '\\', '*'])
                {
                    "cadenced runs the program directly, without a shell: write the program and each argument as one string, e.g. `command = [\"/usr/local/bin/publish\", \"--channel\", \"shop\"]`; for pipes, redirections or variables, put the shell line in a script and run the script".to_string()
                } else {
                    let words: Vec<String> = line
                        .split_whitespace()
                        .map(|w| format!("\"{w}\""))
                        .collect();
                    format!(
                        "write `{name} = [{}]`; cadenced runs the program directly, without a shell",
                        words.join(", ")
                    )
                };
                self.error(
                    value.span(),
                    format!("`{name}` must be an argument vector, not a shell string"),
                    help,
                );
                return None;
            }
            _ => {
                self.type_error(
                    name,
                    "an array of strings",
                    value,
                    "`command = [\"/usr/local/bin/publish\", \"--channel\", \"shop\"]`",
                );
                return None;
            }
        };
        if items.is_empty() {
            self.error(value.span(), format!("`{name}` is empty"), HELP);
            return None;
        }
        let mut argv = Vec::new();
        for item in items.iter() {
            match item.get_ref().as_str() {
                Some(arg) => argv.push(arg.to_string()),
                None => self.type_error(
                    name,
                    "an array of strings",
                    item,
                    "every argument in quotes",
                ),
            }
        }
        if argv.len() != items.len() {
            return None;
        }
        if argv[0].is_empty() {
            self.error(
                items[0].span(),
                format!("the program in `{name}` is empty"),
                HELP,
            );
            return None;
        }
        Some(argv)
    }
}

fn to_field<T>(value: Option<T>, span: Range<usize>) -> Field<T> {
    match value {
        Some(v) => Field::Set(v, span),
        None => Field::Invalid,
    }
}

fn integer(value: &DeValue<'_>) -> Option<i64> {
    match value {
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
        _ => None,
    }
}

fn article(type_str: &str) -> String {
    let a = if type_str.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{a} {type_str}")
}

fn list(items: &[&str]) -> String {
    items.join(", ")
}

/// The platforms whose channels take `key`, for messages: "`x` and `mastodon`".
fn owners_of(key: &str) -> Option<String> {
    let owners: Vec<String> = Platform::all()
        .filter(|p| platform_keys(*p).any(|n| n == key))
        .map(|p| format!("`{p}`"))
        .collect();
    (!owners.is_empty()).then(|| owners.join(" and "))
}

/// Whether a source line may hold a credential, so its text must not be shown: it mentions
/// a credential-like word, or its key is a near-miss of a credential key (`tokn = "…"`).
/// Errs towards hiding; the line number is still given.
fn may_hold_secret(line: &str) -> bool {
    let lower = line.to_lowercase();
    if ["token", "password", "passwd", "secret", "api_key", "apikey"]
        .iter()
        .any(|w| lower.contains(w))
    {
        return true;
    }
    let key = lower
        .split('=')
        .next()
        .unwrap_or("")
        .trim()
        .trim_matches(['"', '\'']);
    did_you_mean(key, secret_keys()).is_some()
}

fn is_channel_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A valid channel name close to `name`, for the help line.
fn suggest_channel_name(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-');
    if out.is_empty() {
        "shop-x".to_string()
    } else {
        out.to_string()
    }
}

/// A zone name close to a mistyped one, for messages outside a config (see [`zones`]).
pub fn suggest_zone(name: &str) -> Option<String> {
    zones::suggest(name, &[]).map(|s| s.zone)
}

/// The valid zones a config's text names (`[defaults]` first), as context for suggestions.
fn zones_in(text: &str) -> Vec<String> {
    let Ok(table) = toml::from_str::<toml::Table>(text) else {
        return Vec::new();
    };
    let zone_of = |t: &toml::Value| {
        t.get("timezone")
            .and_then(toml::Value::as_str)
            .filter(|z| TimeZone::get(z).is_ok())
            .map(str::to_string)
    };
    let mut zones: Vec<String> = Vec::new();
    let defaults = table.get("defaults").and_then(zone_of);
    let channels = table
        .get("channels")
        .and_then(toml::Value::as_table)
        .into_iter()
        .flat_map(|t| t.values())
        .filter_map(zone_of);
    for z in defaults.into_iter().chain(channels) {
        if !zones.contains(&z) {
            zones.push(z);
        }
    }
    zones
}

/// A key's default value, written as in TOML, parsed as its kind. The defaults are the
/// platforms' own constants, so one that does not parse is a bug caught by the tests.
fn default_value(key: &KeySpec, default: &str) -> Option<KeyValue> {
    let unquoted = default.trim_matches('"');
    match key.kind {
        Kind::Url => Some(KeyValue::Url(unquoted.to_string())),
        Kind::Handle | Kind::Id => Some(KeyValue::Text(unquoted.to_string())),
        Kind::Integer { .. } => unquoted.parse().ok().map(KeyValue::Integer),
        Kind::Duration { .. } => duration::parse(unquoted).ok().map(KeyValue::Duration),
        Kind::Secret | Kind::Argv => None,
    }
}

fn about(key: &KeySpec) -> String {
    if key.about.is_empty() {
        String::new()
    } else {
        format!(" ({})", key.about)
    }
}

enum UrlProblem {
    /// The URL has a password in it: the message must not show the URL.
    Password,
    Other {
        message: String,
        help: String,
    },
}

/// `https://` anywhere; plain `http://` only to this machine (127.0.0.0/8, ::1, localhost),
/// where there is no network to eavesdrop on and test servers live.
fn check_url(written: &str) -> Result<(), UrlProblem> {
    let other = |message: String, help: String| Err(UrlProblem::Other { message, help });
    let url = match reqwest::Url::parse(written) {
        Ok(url) => url,
        Err(_) if !written.contains("://") => {
            return other(
                format!("\"{written}\" is not a URL"),
                format!("write the full URL: \"https://{written}\""),
            );
        }
        Err(e) => {
            return other(
                format!("\"{written}\" is not a URL ({e})"),
                "write a full URL such as \"https://example.org/path\"".into(),
            );
        }
    };
    if url.password().is_some() {
        return Err(UrlProblem::Password);
    }
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return other(
            format!("\"{written}\" has no host"),
            "write a full URL such as \"https://example.org/path\"".into(),
        );
    };
    // `host_str` writes IPv6 addresses in brackets and domains in lowercase.
    let ip = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>();
    let loopback = host == "localhost" || ip.is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => other(
            format!("plain http:// is refused for \"{written}\""),
            format!(
                "use https:// (\"{}\"); http:// is allowed only for loopback addresses (127.0.0.1, ::1, localhost)",
                written.replacen("http://", "https://", 1)
            ),
        ),
        scheme => other(
            format!("`{scheme}:` URLs are not supported (\"{written}\")"),
            "write an https:// URL".into(),
        ),
    }
}

/// Environment variables that hold any channel's credential: an exec program must not
/// inherit them.
pub fn credential_env_names(config: &Config) -> Vec<String> {
    let mut names: Vec<String> = config
        .channels
        .iter()
        .flat_map(|c| c.secrets())
        .filter_map(|(_, secret)| match secret {
            SecretRef::Env(name) => Some(name.clone()),
            SecretRef::File(_) | SecretRef::Credential(_) => None,
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Checks that every channel's credentials can be read from here, for `cadenced check`:
/// warnings (never errors, since `check` often runs outside the service, where systemd
/// credentials and the service's environment are missing) for credentials that cannot be
/// read (except for dry-run channels, which never send them) and for credential files that
/// every user can read. Reads the config file again only
/// to point at the credential's line. Never puts a secret into a message.
pub fn check_credentials(
    config: &Config,
    env_lookup: impl Fn(&str) -> Option<String>,
    credentials_dir: Option<&Path>,
) -> Vec<Diagnostic> {
    let text = std::fs::read_to_string(&config.path).unwrap_or_default();
    let root = DeTable::parse(&text).ok();
    let span_of = |channel: &str, key: &str| -> Option<Range<usize>> {
        let channels = root
            .as_ref()?
            .get_ref()
            .get("channels")?
            .get_ref()
            .as_table()?;
        Some(
            channels
                .get(channel)?
                .get_ref()
                .as_table()?
                .get(key)?
                .span(),
        )
    };
    let mut out = Vec::new();
    let tokens = crate::tokens::TokenStore::beside(&config.database);
    for channel in &config.channels {
        if let Some(d) = connection_warning(config, channel, &tokens) {
            out.push(d);
        }
        for (key, secret) in channel.secrets() {
            let place = |d: Diagnostic| match span_of(&channel.name, key) {
                Some(span) => d.at_span(&text, span),
                None => d,
            };
            if let SecretRef::File(path) = secret
                && let Ok(meta) = std::fs::metadata(path)
            {
                use std::os::unix::fs::PermissionsExt;
                if meta.permissions().mode() & 0o004 != 0 {
                    out.push(place(
                        Diagnostic::warning(
                            &config.path,
                            format!(
                                "the `{key}` file of channel `{}` can be read by every user: `{}`",
                                channel.name,
                                path.display()
                            ),
                        )
                        .with_help(format!(
                            "chmod 600 {} (and make the cadenced user its owner)",
                            path.display()
                        )),
                    ));
                }
            }
            // A dry-run channel writes to the outbox and never sends its credential, so
            // one that cannot be read is no problem yet (the bundled example relies on it).
            if channel.dry_run {
                continue;
            }
            if let Err(why) = secret.read(&env_lookup, credentials_dir) {
                let help = match secret {
                    SecretRef::Env(name) => format!(
                        "set `{name}` in the service's environment (e.g. with `EnvironmentFile=`); until it can be read, the daemon disables channel `{}`",
                        channel.name
                    ),
                    SecretRef::File(path) => format!(
                        "create {} readable by the cadenced user only (chmod 600); until it can be read, the daemon disables channel `{}`",
                        path.display(),
                        channel.name
                    ),
                    SecretRef::Credential(name) => format!(
                        "add `LoadCredential={name}:/path/to/secret` to the unit; systemd credentials are visible only inside the service, so `cadenced check` run by hand cannot read them"
                    ),
                };
                out.push(place(
                    Diagnostic::warning(
                        &config.path,
                        format!(
                            "cannot read the `{key}` of channel `{}` from here: {why}",
                            channel.name
                        ),
                    )
                    .with_help(help),
                ));
            }
        }
    }
    out
}

/// A channel that connects with OAuth (`cadenced auth`) but has no tokens in the token
/// store, or whose refresh was refused: the daemon cannot publish for it. Silent where the
/// store cannot be read from here (staff without the daemon's rights) and for dry runs.
fn connection_warning(
    config: &Config,
    channel: &Channel,
    tokens: &crate::tokens::TokenStore,
) -> Option<Diagnostic> {
    if channel.dry_run {
        return None;
    }
    let ctx = crate::platforms::ChannelCtx {
        name: &channel.name,
        settings: &channel.settings,
        now: jiff::Timestamp::UNIX_EPOCH,
    };
    if !matches!(
        channel.platform.auth(&ctx),
        crate::platforms::AuthFlow::OAuth2 { .. }
    ) {
        return None;
    }
    let stored = tokens.get(&channel.name).ok()?;
    let name = &channel.name;
    let title = channel.platform.title();
    let message = match (&stored.needs_auth, stored.values.is_empty()) {
        (Some(why), _) => format!("channel `{name}` must be connected to {title} again: {why}"),
        (None, true) => format!("channel `{name}` is not connected to {title} yet"),
        (None, false) => return None,
    };
    Some(Diagnostic::warning(&config.path, message).with_help(format!(
        "run `cadenced auth {name}` as the user the daemon runs as; until then the daemon cannot publish for this channel"
    )))
}

#[cfg(test)]
mod tests;

/// `base.join(rel)` with `.` and `..` folded away where the path allows, so messages show
/// `queue/shop-x/a.md` rather than `config/../queue/shop-x/a.md`. Lexical only: symlinks are
/// not followed (the queue's confinement checks canonical paths separately).
pub fn lexical_join(base: &Path, rel: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for part in base.join(rel).components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                let last = out.components().next_back();
                match last {
                    Some(Component::Normal(_)) => {
                        out.pop();
                    }
                    Some(Component::RootDir) => {}
                    _ => out.push(".."),
                }
            }
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

#[cfg(test)]
mod lexical_tests {
    use super::lexical_join;
    use std::path::Path;

    #[test]
    fn folds_dot_dot_where_it_can() {
        assert_eq!(
            lexical_join(Path::new("config"), Path::new("../queue")),
            Path::new("queue")
        );
        assert_eq!(
            lexical_join(Path::new("/etc/cadenced"), Path::new("../../var/q")),
            Path::new("/var/q")
        );
        assert_eq!(
            lexical_join(Path::new(""), Path::new("../q")),
            Path::new("../q")
        );
        assert_eq!(
            lexical_join(Path::new("a"), Path::new("..")),
            Path::new(".")
        );
        assert_eq!(
            lexical_join(Path::new("/x"), Path::new("/abs/./p")),
            Path::new("/abs/p")
        );
    }
}
