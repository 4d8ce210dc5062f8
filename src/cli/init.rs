//! `cadenced init [DIR]`: a new project folder a user can run at once. Asks (or takes
//! flags for) the time zone and the channels, writes `DIR/config/cadenced.toml` (commented,
//! every real platform in dry-run mode until its credential is in place) and
//! `DIR/queue/<channel>/` with a sample post each, then runs `check` on the result.
//! `cadenced check` then works from DIR without `--config` (./config/cadenced.toml).
//!
//! It never overwrites: an existing config is an error, existing posts are left alone.

use std::fmt::Write as _;
use std::io::{self, BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use jiff::tz::TimeZone;

use crate::clock::Clock;
use crate::platforms::keys::{Kind, Need};
use crate::platforms::{Platform, Transport};

use super::{EXIT_CONFIG, Output};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The folder to set up (created if missing): config/ and queue/ go inside it.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// The time zone slots and daily caps are read in (an IANA name); default: this machine's.
    #[arg(long, value_name = "ZONE")]
    pub timezone: Option<String>,
    /// A channel as NAME:PLATFORM (repeat for more), e.g. `shop-mastodon:mastodon`.
    /// Platforms: x, mastodon, bluesky, webhook, exec, outbox.
    #[arg(long = "channel", value_name = "NAME:PLATFORM")]
    pub channels: Vec<String>,
    /// Ask nothing: take the flags, and defaults for the rest (for scripts).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// One channel to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewChannel {
    pub name: String,
    pub platform: Platform,
    /// The platform's account keys (`instance`, `handle`, `url`, `command`), as TOML values.
    pub account: Vec<(&'static str, String)>,
}

/// Everything `init` writes, decided.
#[derive(Debug, Clone)]
pub struct Plan {
    pub timezone: String,
    pub channels: Vec<NewChannel>,
}

pub fn run(
    explicit_config: Option<&Path>,
    args: Args,
    clock: &dyn Clock,
    out: &Output,
) -> ExitCode {
    if let Some(config) = explicit_config {
        eprintln!(
            "error: `cadenced init` writes a new config into DIR/config/ and does not read {}.\nhelp: run `cadenced init DIR` for a new folder, or edit {} itself.",
            out.path(config),
            out.path(config)
        );
        return ExitCode::from(EXIT_CONFIG);
    }
    let config_path = args.dir.join(crate::config::LOCAL_CONFIG);
    if config_path.exists() {
        eprintln!(
            "error: {} already exists; init never overwrites a config.\nhelp: edit it, or run `cadenced init` with another folder.",
            out.path(&config_path)
        );
        return ExitCode::from(EXIT_CONFIG);
    }
    let plan = if args.yes {
        plan_from_flags(&args)
    } else {
        let stdin = io::stdin();
        let interactive = stdin.is_terminal();
        ask(&args, &mut stdin.lock(), &mut io::stderr(), interactive)
    };
    let plan = match plan {
        Ok(p) => p,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let written = match write(&args.dir, &plan) {
        Ok(w) => w,
        Err(e) => {
            eprintln!(
                "error: could not write into {}: {e}\nhelp: check that the folder is writable, or choose another one.",
                out.path(&args.dir)
            );
            return ExitCode::FAILURE;
        }
    };
    for path in &written {
        outln!("wrote {}", out.path(path));
    }
    outln!("\nChecking it:\n");
    let code = super::check::run(
        Some(&config_path),
        super::check::Args {
            strict: false,
            json: false,
        },
        clock,
        out,
    );
    let shown = out.path(&config_path);
    outln!(
        "\nNext: put each channel's credential where {shown} says, replace the sample posts with yours, \
         and remove `dry_run = true` from a channel when it should really publish.\n\
         See what would go out: cadenced plan --config {shown}\n\
         Run it: cadenced run --config {shown}   (or install the Debian package and use /etc/cadenced/cadenced.toml)"
    );
    code
}

/// `--yes`: flags and defaults only.
pub fn plan_from_flags(args: &Args) -> Result<Plan, String> {
    let timezone = match &args.timezone {
        Some(z) => check_zone(z)?,
        None => system_zone(),
    };
    let mut channels = Vec::new();
    for spec in &args.channels {
        channels.push(parse_channel(spec)?);
    }
    if channels.is_empty() {
        channels.push(new_channel("shop-outbox", outbox()));
    }
    check_unique(&channels)?;
    Ok(Plan { timezone, channels })
}

/// Asks for what the flags leave open, one question a line; an empty answer takes the
/// default shown in brackets (so a closed stdin takes every default).
pub fn ask(
    args: &Args,
    input: &mut dyn BufRead,
    prompt: &mut dyn Write,
    interactive: bool,
) -> Result<Plan, String> {
    let mut line = |question: &str, default: &str| -> Result<String, String> {
        let _ = write!(prompt, "{question} [{default}]: ");
        let _ = prompt.flush();
        let mut answer = String::new();
        let n = input.read_line(&mut answer).map_err(|e| e.to_string())?;
        if n == 0 && interactive {
            return Err("stopped: no answer (end of input)".to_string());
        }
        let answer = answer.trim();
        Ok(if answer.is_empty() {
            default.to_string()
        } else {
            answer.to_string()
        })
    };
    let timezone = match &args.timezone {
        Some(z) => check_zone(z)?,
        None => {
            let default = system_zone();
            let mut question = "Time zone (slots and daily caps are read in it)".to_string();
            loop {
                let answer = line(&question, &default)?;
                match check_zone(&answer) {
                    Ok(z) => break z,
                    Err(e) if interactive => question = format!("{e}\nTime zone"),
                    Err(e) => return Err(e),
                }
            }
        }
    };
    let mut channels = Vec::new();
    for spec in &args.channels {
        channels.push(parse_channel(spec)?);
    }
    if channels.is_empty() {
        let names: Vec<&str> = Platform::all().map(Platform::name).collect();
        let answer = line(
            &format!(
                "Platforms, separated by commas ({}; outbox needs no account)",
                names.join(", ")
            ),
            "outbox",
        )?;
        for word in answer.split([',', ' ']).filter(|w| !w.is_empty()) {
            let Some(platform) = Platform::parse(&word.to_ascii_lowercase()) else {
                return Err(unknown_platform(word));
            };
            let default = format!("shop-{}", platform.name());
            let name = line(&format!("Name of the {platform} channel"), &default)?;
            if !is_channel_name(&name) {
                return Err(bad_name(&name));
            }
            let mut channel = new_channel(&name, platform);
            for (key, value) in &mut channel.account {
                let current = value.trim_matches('"').to_string();
                if value.starts_with('[') {
                    continue; // exec's command: edited in the file
                }
                let answer = line(&format!("{platform} `{key}` of {name}"), &current)?;
                *value = toml_string(&answer);
            }
            channels.push(channel);
        }
        if channels.is_empty() {
            channels.push(new_channel("shop-outbox", outbox()));
        }
    }
    check_unique(&channels)?;
    Ok(Plan { timezone, channels })
}

fn system_zone() -> String {
    TimeZone::try_system()
        .ok()
        .and_then(|tz| tz.iana_name().map(str::to_string))
        .filter(|n| TimeZone::get(n).is_ok())
        .unwrap_or_else(|| "UTC".to_string())
}

fn check_zone(name: &str) -> Result<String, String> {
    if TimeZone::get(name).is_ok() {
        return Ok(name.to_string());
    }
    Err(match crate::config::suggest_zone(name) {
        Some(best) => format!("unknown time zone `{name}`; did you mean `{best}`?"),
        None => format!(
            "unknown time zone `{name}`; write an IANA name such as `Europe/Madrid` (`timedatectl list-timezones` lists them)"
        ),
    })
}

fn parse_channel(spec: &str) -> Result<NewChannel, String> {
    let Some((name, platform)) = spec.split_once(':') else {
        return Err(format!(
            "`--channel {spec}` needs a platform: write NAME:PLATFORM, e.g. `--channel {spec}:mastodon`"
        ));
    };
    if !is_channel_name(name) {
        return Err(bad_name(name));
    }
    let platform = Platform::parse(&platform.to_ascii_lowercase())
        .ok_or_else(|| unknown_platform(platform))?;
    Ok(new_channel(name, platform))
}

fn unknown_platform(word: &str) -> String {
    let names: Vec<&str> = Platform::all().map(Platform::name).collect();
    let hint = crate::diag::did_you_mean(&word.to_ascii_lowercase(), names.iter().copied())
        .map(|b| format!("did you mean `{b}`? "))
        .unwrap_or_default();
    format!(
        "unknown platform `{word}`; {hint}the platforms are {}",
        names.join(", ")
    )
}

fn bad_name(name: &str) -> String {
    format!(
        "channel name `{name}` is not allowed; use lowercase letters, digits and `-` (it is also the queue folder's name), e.g. `shop-mastodon`"
    )
}

fn is_channel_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn check_unique(channels: &[NewChannel]) -> Result<(), String> {
    for (i, c) in channels.iter().enumerate() {
        if channels[..i].iter().any(|o| o.name == c.name) {
            return Err(format!(
                "two channels are named `{}`; give each its own name",
                c.name
            ));
        }
    }
    Ok(())
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn outbox() -> Platform {
    Platform::named("outbox").expect("the outbox platform is registered")
}

/// A channel with the platform's starter keys (its declaration says which), their examples
/// as placeholders the user edits; credentials are written apart, as references.
pub fn new_channel(name: &str, platform: Platform) -> NewChannel {
    let account = platform
        .starter_keys()
        .into_iter()
        .filter(|k| k.kind != Kind::Secret)
        .map(|k| (k.name, k.example.to_string()))
        .collect();
    NewChannel {
        name: name.to_string(),
        platform,
        account,
    }
}

/// The credential keys a new channel of `platform` starts with.
fn credential_keys(platform: Platform) -> Vec<&'static str> {
    platform
        .starter_keys()
        .into_iter()
        .filter(|k| k.kind == Kind::Secret)
        .map(|k| k.name)
        .collect()
}

/// Whether the channel talks to a network account (and so starts in dry-run mode).
fn is_network(platform: Platform) -> bool {
    platform.transport() == Transport::Http
}

/// The config text.
pub fn config_text(plan: &Plan) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# cadenced config, written by `cadenced init`. Every key is explained in\n\
         # `man cadenced.toml`; `cadenced check` validates this file and the queue.\n\
         #\n\
         # Paths are relative to this file. Durations: \"90s\", \"15m\", \"3h\", \"30d\".\n\
         # Channels that talk to a network start with `dry_run = true`: they keep the\n\
         # platform's rules but write what they would send into the outbox folder. Remove\n\
         # that line once the channel's credential is in place (and the sample post is gone).\n\
         \n\
         queue = \"../queue\"                      # one sub-folder per channel: queue/<channel>/\n\
         database = \"../state/cadenced.sqlite\"   # the publish log (created on first run)\n\
         outbox = \"../outbox\"                    # where outbox and dry-run channels write\n\
         log_level = \"info\"                      # error, warn, info, debug, trace\n\
         \n\
         # Every channel inherits these unless it sets its own.\n\
         [defaults]\n\
         timezone = {tz}\n\
         # When a post without `at` may go out: \"HH:MM\", \"Mon-Fri HH:MM\", or cron.\n\
         slots = [\"Mon-Fri 10:00\", \"Mon-Fri 17:30\", \"Sat 11:00\"]\n\
         max_per_day = 2                         # 1 or 2 unique posts a day per network\n\
         min_gap = \"3h\"                          # time between two posts of a channel\n\
         unique_window = \"30d\"                   # how long a text blocks a near-duplicate\n\
         similarity = 0.8                        # how alike two texts may be (4-gram Jaccard)\n\
         catch_up = \"1h\"                         # after downtime, catch up a slot this recent",
        tz = toml_string(&plan.timezone)
    );
    for c in &plan.channels {
        let _ = writeln!(s);
        let _ = writeln!(s, "# {}", c.platform.about());
        let _ = writeln!(s, "[channels.{}]", c.name);
        let _ = writeln!(s, "platform = \"{}\"", c.platform);
        for (key, value) in &c.account {
            let _ = writeln!(s, "{key} = {value}");
        }
        for key in credential_keys(c.platform) {
            let var = format!(
                "{}_{}",
                c.name.to_uppercase().replace('-', "_"),
                key.to_uppercase()
            );
            let _ = writeln!(
                s,
                "{key} = {{ env = \"{var}\" }}\n\
                 # or {key} = {{ file = \"/path/to/{name}-{file}\" }}, or as the installed\n\
                 # service, with the token in /etc/cadenced/credentials/{name}-{file}:\n\
                 # {key} = {{ credential = \"cadenced_{name}-{file}\" }}",
                name = c.name,
                file = key.replace('_', "-"),
            );
        }
        if is_network(c.platform) {
            let _ = writeln!(
                s,
                "dry_run = true                          # remove to publish for real"
            );
        }
        // The keys that have a default, commented out with what they are for.
        for key in c.platform.keys() {
            if let Need::Default(default) = key.need {
                let _ = writeln!(
                    s,
                    "# {} = {}    # {} (default {default})",
                    key.name, key.example, key.about
                );
            }
        }
    }
    s
}

/// Texts for sample posts: different enough from each other that the "different text per
/// platform" rule holds none of them back.
const SAMPLES: &[&str] = &[
    "New in the shop this week: trail runners in six colours. Which one is yours? #sneakers",
    "We just unpacked the new trail runners, in six colours and every size.\nCome by the shop this week to try a pair, or reply here and we will help you pick.",
    "Six colours of trail runners landed on our shelves today. Our favourite is the moss green one: what's yours?",
    "This week in the shop: the new trail runners arrived in six colours, and our repair workshop is back in December.",
    "Repair workshop dates for December are up: bring worn soles and loose seams, we fix them while you wait.",
    "Gift cards are back, in any amount and wrapped for free at the till.",
];

/// A sample post for the `index`-th channel.
pub fn sample_post(index: usize) -> String {
    let text = SAMPLES[index % SAMPLES.len()];
    format!(
        "+++\n\
         # A sample post written by `cadenced init`: replace it with your own, or move it into\n\
         # drafts/ (sub-folders are never published). Front matter is optional; for example\n\
         # at = \"2026-12-01T10:00\" publishes at that time instead of at a slot, and\n\
         # expires = \"2026-12-02T00:00\" gives up if it has not gone out by then.\n\
         # Every key: `man cadenced-posts`.\n\
         +++\n\
         {text}\n"
    )
}

/// Writes the config and the queue; returns what was written. Existing posts stay.
pub fn write(dir: &Path, plan: &Plan) -> io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let config = dir.join(crate::config::LOCAL_CONFIG);
    if let Some(parent) = config.parent() {
        std::fs::create_dir_all(parent)?;
    }
    // create_new: never replace a config that appeared meanwhile.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&config)?
        .write_all(config_text(plan).as_bytes())?;
    written.push(config);
    for (i, c) in plan.channels.iter().enumerate() {
        let folder = dir.join("queue").join(&c.name);
        std::fs::create_dir_all(folder.join("drafts"))?;
        let post = folder.join("001-hello.md");
        if !post.exists() {
            std::fs::write(&post, sample_post(i))?;
            written.push(post);
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(channels: &[&str]) -> Args {
        Args {
            dir: PathBuf::from("."),
            timezone: Some("Europe/Madrid".to_string()),
            channels: channels.iter().map(|s| s.to_string()).collect(),
            yes: true,
        }
    }

    #[test]
    fn every_platform_makes_a_config_that_parses() {
        let all: Vec<String> = Platform::all().map(|p| format!("shop-{p}:{p}")).collect();
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let plan = plan_from_flags(&args(&all)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config/cadenced.toml");
        let loaded = crate::config::parse(&path, &config_text(&plan))
            .unwrap_or_else(|d| panic!("{d:?}\n{}", config_text(&plan)));
        assert_eq!(loaded.config.channels.len(), Platform::all().count());
        for ch in &loaded.config.channels {
            assert_eq!(ch.dry_run, is_network(ch.platform), "{}", ch.name);
        }
    }

    #[test]
    fn answers_on_stdin_make_the_plan_and_typos_get_a_hint() {
        let a = Args {
            timezone: None,
            yes: false,
            ..args(&[])
        };
        let mut input = io::Cursor::new(
            "Europe/Lisbon\nmastodon, bluesky\nshop-toots\nhttps://mastodon.example\n\nshop.example\n",
        );
        let mut prompts = Vec::new();
        let plan = ask(&a, &mut input, &mut prompts, false).unwrap();
        assert_eq!(plan.timezone, "Europe/Lisbon");
        assert_eq!(
            plan.channels
                .iter()
                .map(|c| (c.name.as_str(), c.platform))
                .collect::<Vec<_>>(),
            [
                ("shop-toots", Platform::named("mastodon").unwrap()),
                ("shop-bluesky", Platform::named("bluesky").unwrap())
            ]
        );
        assert_eq!(
            plan.channels[0].account,
            [("instance", "\"https://mastodon.example\"".to_string())]
        );
        assert_eq!(
            plan.channels[1].account,
            [("handle", "\"shop.example\"".to_string())]
        );
        let err = plan_from_flags(&args(&["shop:mastodn"])).unwrap_err();
        assert!(err.contains("did you mean `mastodon`?"), "{err}");
        let err = plan_from_flags(&Args {
            timezone: Some("Europe/Lisbn".into()),
            ..args(&[])
        })
        .unwrap_err();
        assert!(err.contains("Europe/Lisbon"), "{err}");
    }

    #[test]
    fn no_answers_take_the_defaults() {
        let a = Args {
            yes: false,
            ..args(&[])
        };
        let plan = ask(&a, &mut io::Cursor::new(""), &mut Vec::new(), false).unwrap();
        assert_eq!(plan.channels, [new_channel("shop-outbox", outbox())]);
    }

    #[test]
    fn samples_differ_enough_between_channels() {
        use crate::cadence::similarity::{Fingerprint, similarity};
        let text = |i: usize| crate::post::parse(sample_post(i).as_bytes()).unwrap().body;
        for a in 0..SAMPLES.len() {
            for b in a + 1..SAMPLES.len() {
                let (fa, fb) = (
                    Fingerprint::of_text(&text(a)),
                    Fingerprint::of_text(&text(b)),
                );
                assert!(similarity(&fa, &fb) < 0.5, "samples {a} and {b}");
            }
        }
    }
}
