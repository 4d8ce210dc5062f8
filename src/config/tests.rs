//! Tests of the config module: every error and warning with its message, line and help,
//! the fixtures under tests/fixtures/config/, and that no secret ever reaches a message.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use jiff::SignedDuration;

use super::*;
use crate::diag::Severity;

const FILE: &str = "/etc/cadenced/cadenced.toml";

fn parse_ok(text: &str) -> Loaded {
    match parse(Path::new(FILE), text) {
        Ok(loaded) => loaded,
        Err(errors) => panic!("expected a valid config, got {errors:#?}"),
    }
}

fn errors(text: &str) -> Vec<Diagnostic> {
    match parse(Path::new(FILE), text) {
        Ok(loaded) => panic!("expected errors, got {:#?}", loaded.config),
        Err(errors) => {
            assert!(errors.iter().all(Diagnostic::is_error), "{errors:#?}");
            errors
        }
    }
}

fn one_error(text: &str) -> Diagnostic {
    let mut errors = errors(text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    errors.remove(0)
}

fn help(d: &Diagnostic) -> &str {
    d.help.as_deref().unwrap_or("")
}

/// A valid config with one outbox channel and no slots (so it does not depend on slot
/// parsing); tests append to it.
const BASE: &str =
    "[defaults]\ntimezone = \"Europe/Madrid\"\n\n[channels.shop-outbox]\nplatform = \"outbox\"\n";

#[test]
fn minimal_config_gets_the_spec_defaults() {
    let loaded = parse_ok(BASE);
    let c = &loaded.config;
    assert_eq!(c.path, PathBuf::from(FILE));
    assert_eq!(c.queue, PathBuf::from("/etc/cadenced/queue"));
    assert_eq!(
        c.database,
        PathBuf::from("/etc/cadenced/state/cadenced.sqlite")
    );
    assert_eq!(c.outbox, PathBuf::from("/etc/cadenced/outbox"));
    assert_eq!(c.log_level, "info");
    assert_eq!(c.channels.len(), 1);
    let ch = &c.channels[0];
    assert_eq!(ch.name, "shop-outbox");
    assert_eq!(ch.platform.name(), "outbox");
    assert_eq!(ch.settings, Settings::new());
    assert_eq!(ch.rules.timezone.iana_name(), Some("Europe/Madrid"));
    assert_eq!(ch.rules.max_per_day, 2);
    assert_eq!(ch.rules.min_gap, SignedDuration::from_hours(3));
    assert_eq!(ch.rules.unique_window, SignedDuration::from_hours(30 * 24));
    assert_eq!(ch.rules.catch_up, SignedDuration::from_hours(1));
    assert_eq!(ch.rules.similarity, 0.8);
    assert!(!ch.rules.paused);
    assert!(!ch.dry_run);
    assert!(!ch.variation, "outbox does not vary by default");
    assert!(ch.secrets().is_empty());
}

#[test]
fn a_channel_without_slots_is_a_warning() {
    let loaded = parse_ok(BASE);
    assert_eq!(loaded.warnings.len(), 1, "{:#?}", loaded.warnings);
    let w = &loaded.warnings[0];
    assert_eq!(w.severity, Severity::Warning);
    assert_eq!(
        w.message,
        "channel `shop-outbox` has no slots: only posts with `at` will be published"
    );
    assert_eq!(w.line, Some(4));
    assert!(help(w).contains("slots = ["), "{w:?}");
}

#[test]
fn paths_are_relative_to_the_config_folder() {
    let text = format!(
        "queue = \"../queue\"\ndatabase = \"/var/lib/cadenced/log.sqlite\"\noutbox = \"out\"\nlog_level = \"debug\"\n{BASE}"
    );
    let c = parse_ok(&text).config;
    assert_eq!(
        c.queue,
        PathBuf::from("/etc/queue"),
        "`..` is folded for readable messages"
    );
    assert_eq!(c.database, PathBuf::from("/var/lib/cadenced/log.sqlite"));
    assert_eq!(c.outbox, PathBuf::from("/etc/cadenced/out"));
    assert_eq!(c.log_level, "debug");
    // A config named without a folder resolves against the current one.
    let c = parse(Path::new("cadenced.toml"), BASE).unwrap().config;
    assert_eq!(c.queue, PathBuf::from("queue"));
}

#[test]
fn every_platform_reads_its_keys_and_channels_inherit_defaults() {
    let text = r#"[defaults]
timezone = "Europe/Madrid"
min_gap = "1h30m"
similarity = 0.7
dry_run = true

[channels.a-x]
platform = "x"
token = { env = "A_X_TOKEN" }

[channels.b-mastodon]
platform = "mastodon"
instance = "https://mastodon.social"
token = { file = "secrets/masto" }
max_characters = 1000
min_gap = "2h"
dry_run = false

[channels.c-bluesky]
platform = "bluesky"
handle = "shop.bsky.social"
app_password = { credential = "bsky" }
timezone = "America/New_York"

[channels.d-hook]
platform = "webhook"
url = "http://127.0.0.1:8080/hook"
variation = true
paused = true

[channels.e-exec]
platform = "exec"
command = ["/usr/local/bin/publish", "--to", "shop"]

[channels.f-exec]
platform = "exec"
command = ["prog"]
timeout = "2m"
unique_window = "7d"
catch_up = "0s"
"#;
    let c = parse_ok(text).config;
    let names: Vec<&str> = c.channels.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "a-x",
            "b-mastodon",
            "c-bluesky",
            "d-hook",
            "e-exec",
            "f-exec"
        ]
    );
    let [x, masto, bsky, hook, exec, exec2] = &c.channels[..] else {
        unreachable!()
    };

    assert_eq!(
        x.settings.secret("token"),
        Some(&SecretRef::Env("A_X_TOKEN".into()))
    );
    assert_eq!(x.rules.min_gap, SignedDuration::from_mins(90));
    assert_eq!(x.rules.similarity, 0.7);
    assert!(x.dry_run);
    assert!(x.variation);
    assert_eq!(
        x.secrets(),
        vec![("token", &SecretRef::Env("A_X_TOKEN".into()))]
    );

    assert_eq!(
        masto.settings.url("instance"),
        Some("https://mastodon.social")
    );
    assert_eq!(
        masto.settings.secret("token"),
        Some(&SecretRef::File("/etc/cadenced/secrets/masto".into()))
    );
    assert_eq!(masto.settings.integer("max_characters"), Some(1000));
    assert_eq!(masto.limits().max_characters, Some(1000));
    assert_eq!(
        masto.rules.min_gap,
        SignedDuration::from_hours(2),
        "own value wins over [defaults]"
    );
    assert!(!masto.dry_run);

    assert_eq!(
        bsky.settings.url("service"),
        Some(crate::platforms::bluesky::DEFAULT_SERVICE),
        "the declared default"
    );
    assert_eq!(bsky.settings.text("handle"), Some("shop.bsky.social"));
    assert_eq!(
        bsky.settings.secret("app_password"),
        Some(&SecretRef::Credential("bsky".into()))
    );
    assert_eq!(bsky.rules.timezone.iana_name(), Some("America/New_York"));
    assert_eq!(bsky.secrets().len(), 1);

    assert_eq!(hook.settings.url("url"), Some("http://127.0.0.1:8080/hook"));
    assert!(hook.variation);
    assert!(hook.rules.paused);

    assert_eq!(
        exec.settings.argv("command"),
        Some(
            &[
                "/usr/local/bin/publish".to_string(),
                "--to".into(),
                "shop".into()
            ][..]
        )
    );
    assert_eq!(
        exec.settings.duration("timeout"),
        Some(SignedDuration::from_secs(30)),
        "the declared default"
    );
    assert!(!exec.variation, "exec does not vary by default");
    assert_eq!(
        exec2.settings.duration("timeout"),
        Some(SignedDuration::from_mins(2))
    );
    assert_eq!(
        exec2.rules.unique_window,
        SignedDuration::from_hours(7 * 24)
    );
    assert_eq!(exec2.rules.catch_up, SignedDuration::ZERO);
    assert!(Channel::find(&c.channels, "e-exec").is_some_and(|c| c.name == "e-exec"));
    assert!(Channel::find(&c.channels, "nope").is_none());
}

#[test]
fn invalid_toml_points_at_the_spot() {
    let d = one_error("[defaults]\ntimezone = Europe/Madrid\n");
    assert!(d.message.starts_with("invalid TOML: "), "{d:?}");
    assert_eq!(d.line, Some(2));
    assert_eq!(d.file, PathBuf::from(FILE));
    assert_eq!(
        help(&d),
        "put text values in double quotes, e.g. `timezone = \"Europe/Madrid\"`"
    );
}

#[test]
fn duplicate_keys_are_named() {
    let text = format!("{BASE}platform = \"x\"\n");
    let d = one_error(&text);
    assert_eq!(d.message, "invalid TOML: duplicate key `platform`");
    assert_eq!(d.line, Some(6));
    assert!(
        help(&d).contains("remove or rename the second `platform`"),
        "{d:?}"
    );
}

#[test]
fn every_toml_syntax_error_is_reported() {
    let errs = errors("a = \"x\nb = 1979-13-01\n[defaults]\n");
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert_eq!(errs[0].line, Some(1));
    assert_eq!(errs[1].line, Some(2));
    assert!(help(&errs[1]).contains("toml.io"), "{:?}", errs[1]);
    // The parser's follow-up errors on one line are left out.
    let errs = errors("a = [1,\nb = 2\n");
    assert_eq!(errs.len(), 1, "{errs:#?}");
}

#[test]
fn all_errors_are_reported_in_file_order() {
    let text = r#"log_level = "loud"
[defaults]
timezone = "Mars/Olympus"
min_gap = "soon"

[channels.a]
platform = "x"
tokne = { env = "T" }

[channels.b]
platform = "webhook"
url = "http://hooks.example/x"
"#;
    let errs = errors(text);
    let lines: Vec<Option<usize>> = errs.iter().map(|d| d.line).collect();
    // line 6: channel `a` lacks `token`; line 8: the misspelt key.
    assert_eq!(
        lines,
        [Some(1), Some(3), Some(4), Some(6), Some(8), Some(12)],
        "{errs:#?}"
    );
}

#[test]
fn unknown_top_level_keys_suggest_a_fix() {
    let d = one_error(&format!("queu = \"q\"\n{BASE}"));
    assert_eq!(d.message, "unknown key `queu`");
    assert_eq!(d.line, Some(1));
    assert_eq!(help(&d), "did you mean `queue`?");

    let d = one_error(&format!("max_per_day = 1\n{BASE}"));
    assert_eq!(d.message, "unknown key `max_per_day`");
    assert!(
        help(&d).starts_with("`max_per_day` is a channel setting: put it under [defaults]"),
        "{d:?}"
    );

    let d = one_error(&format!("instance = \"https://m.example\"\n{BASE}"));
    assert!(
        help(&d).starts_with("`instance` belongs to one channel"),
        "{d:?}"
    );

    let d = one_error(&format!("bananas = 1\n{BASE}"));
    assert!(
        help(&d).starts_with("the top level takes queue, database"),
        "{d:?}"
    );
}

#[test]
fn unknown_keys_in_defaults_suggest_a_fix() {
    let d = one_error(
        "[defaults]\ntimezone = \"UTC\"\nmax_per_dya = 1\n[channels.a]\nplatform = \"outbox\"\n",
    );
    assert_eq!(d.message, "unknown key `max_per_dya` in [defaults]");
    assert_eq!(d.line, Some(3));
    assert_eq!(help(&d), "did you mean `max_per_day`?");
}

#[test]
fn defaults_cannot_set_platform_or_platform_keys() {
    let d = one_error(
        "[defaults]\ntimezone = \"UTC\"\nplatform = \"x\"\n[channels.a]\nplatform = \"outbox\"\n",
    );
    assert_eq!(d.message, "`platform` cannot be set in [defaults]");
    assert_eq!(d.line, Some(3));
    assert!(help(&d).contains("every [channels.<name>] table"), "{d:?}");

    let d = one_error(
        "[defaults]\ntimezone = \"UTC\"\ninstance = \"https://m.example\"\n[channels.a]\nplatform = \"outbox\"\n",
    );
    assert_eq!(
        d.message,
        "`instance` cannot be set in [defaults]: it is a key of `mastodon` channels"
    );
    assert_eq!(d.line, Some(3));
    assert!(
        help(&d).starts_with("platform keys belong to one account"),
        "{d:?}"
    );
}

#[test]
fn a_top_level_key_below_a_header_says_to_move_it() {
    let d = one_error(
        "[defaults]\ntimezone = \"UTC\"\nqueue = \"q\"\n[channels.a]\nplatform = \"outbox\"\n",
    );
    assert_eq!(d.message, "`queue` is not a key of [defaults]");
    assert_eq!(d.line, Some(3));
    assert_eq!(
        help(&d),
        "`queue` is a top-level key: move it above the first [table] header"
    );
}

#[test]
fn unknown_channel_keys_suggest_a_fix() {
    let d = one_error(&format!("{BASE}dryrun = true\n"));
    assert_eq!(d.message, "unknown key `dryrun` in [channels.shop-outbox]");
    assert_eq!(d.line, Some(6));
    assert_eq!(help(&d), "did you mean `dry_run`?");

    let d = one_error(&format!("{BASE}colour = \"red\"\n"));
    assert!(
        help(&d).starts_with("outbox channels take platform, timezone, slots"),
        "{d:?}"
    );
}

#[test]
fn a_key_of_another_platform_says_so() {
    let d = one_error(&format!("{BASE}instance = \"https://mastodon.social\"\n"));
    assert_eq!(
        d.message,
        "`instance` is not a key of outbox channels; it belongs to `mastodon` channels"
    );
    assert_eq!(d.line, Some(6));
    assert_eq!(
        help(&d),
        "remove it from [channels.shop-outbox], or set `platform = \"mastodon\"` if this account is on that platform"
    );
    let d = one_error(&format!("{BASE}token = {{ env = \"T\" }}\n"));
    assert_eq!(
        d.message,
        "`token` is not a key of outbox channels; it belongs to `x` and `mastodon` channels"
    );
}

#[test]
fn planned_platforms_are_not_supported_yet() {
    let d = one_error(
        "[defaults]\ntimezone = \"UTC\"\n[channels.shop-fb]\nplatform = \"facebook\"\npage_id = \"1\"\n",
    );
    assert_eq!(
        d.message,
        "platform `facebook` is not supported yet by this version"
    );
    assert_eq!(d.line, Some(4));
    assert!(
        help(&d).starts_with("supported platforms: x, mastodon, bluesky, webhook, exec, outbox"),
        "{d:?}"
    );
    assert!(help(&d).contains("`exec` or `webhook`"), "{d:?}");
}

#[test]
fn unknown_platforms_list_the_supported_ones() {
    let d = one_error(
        "[defaults]\ntimezone = \"UTC\"\n[channels.a]\nplatform = \"mastadon\"\ninstance = \"https://m.example\"\n",
    );
    assert_eq!(d.message, "unknown platform `mastadon`");
    assert_eq!(d.line, Some(4));
    assert_eq!(
        help(&d),
        "did you mean `mastodon`? Supported platforms: x, mastodon, bluesky, webhook, exec, outbox"
    );

    let d = one_error("[defaults]\ntimezone = \"UTC\"\n[channels.a]\nplatform = \"myspace\"\n");
    assert_eq!(
        help(&d),
        "supported platforms: x, mastodon, bluesky, webhook, exec, outbox"
    );

    let d = one_error("[defaults]\ntimezone = \"UTC\"\n[channels.a]\nplatform = \"Bluesky\"\n");
    assert_eq!(
        help(&d),
        "platform names are lowercase: did you mean `bluesky`?"
    );

    // With no platform to go by, unknown keys are still caught.
    let errs = errors(
        "[defaults]\ntimezone = \"UTC\"\n[channels.a]\nplatform = \"myspace\"\nbananas = 1\n",
    );
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert_eq!(errs[1].message, "unknown key `bananas` in [channels.a]");
}

#[test]
fn a_channel_without_platform_is_an_error() {
    let d = one_error("[defaults]\ntimezone = \"UTC\"\n[channels.shop]\nslots = []\n");
    assert_eq!(d.message, "channel `shop` has no `platform`");
    assert_eq!(d.line, Some(3));
    assert_eq!(
        help(&d),
        "add `platform = \"…\"` to [channels.shop]; supported platforms: x, mastodon, bluesky, webhook, exec, outbox"
    );
}

#[test]
fn missing_platform_keys_are_errors_with_an_example() {
    let head = "[defaults]\ntimezone = \"UTC\"\n[channels.shop-x]\n";
    // X takes one of several ways to log in: its own check says which.
    let d = one_error(&format!("{head}platform = \"x\"\n"));
    assert_eq!(d.message, "an X channel needs credentials");
    assert_eq!(d.line, Some(3));
    assert!(help(&d).contains("`client_id`"), "{d:?}");
    let d = one_error(&format!(
        "{head}platform = \"x\"\napi_key = {{ env = \"K\" }}\napi_secret = {{ env = \"S\" }}\n"
    ));
    assert_eq!(
        d.message,
        "OAuth 1.0a needs all four keys; `access_token`, `access_token_secret` missing"
    );
    assert_eq!(d.line, Some(5));

    let errs = errors(&format!("{head}platform = \"mastodon\"\n"));
    let messages: Vec<&str> = errs.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "channel `shop-x` (mastodon platform) is missing `instance`",
            "channel `shop-x` (mastodon platform) is missing `token`"
        ]
    );
    assert_eq!(
        help(&errs[0]),
        "add `instance = \"https://mastodon.social\"` to [channels.shop-x] (the server the account is on)"
    );

    let errs = errors(&format!("{head}platform = \"bluesky\"\n"));
    let messages: Vec<&str> = errs.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "channel `shop-x` (bluesky platform) is missing `handle`",
            "channel `shop-x` (bluesky platform) is missing `app_password`"
        ]
    );

    let d = one_error(&format!("{head}platform = \"webhook\"\n"));
    assert_eq!(
        d.message,
        "channel `shop-x` (webhook platform) is missing `url`"
    );
    assert_eq!(
        help(&d),
        "add `url = \"https://hooks.example/cadenced\"` to [channels.shop-x] (where the post is POSTed as JSON)"
    );

    let d = one_error(&format!("{head}platform = \"exec\"\n"));
    assert_eq!(
        d.message,
        "channel `shop-x` (exec platform) is missing `command`"
    );
    assert!(
        help(&d).contains("command = [\"/usr/local/bin/publish\""),
        "{d:?}"
    );
}

#[test]
fn a_bad_time_zone_suggests_a_close_name() {
    let d = one_error(
        "[defaults]\ntimezone = \"Europe/Madird\"\n[channels.a]\nplatform = \"outbox\"\n",
    );
    assert_eq!(d.message, "unknown time zone `Europe/Madird`");
    assert_eq!(d.line, Some(2));
    assert!(
        help(&d).starts_with("did you mean `Europe/Madrid`?"),
        "{d:?}"
    );

    let d = one_error("[defaults]\ntimezone = \"Madrid\"\n[channels.a]\nplatform = \"outbox\"\n");
    assert!(
        help(&d).starts_with("did you mean `Europe/Madrid`?"),
        "{d:?}"
    );

    let d = one_error(
        "[defaults]\ntimezone = \"Middle Earth/Shire\"\n[channels.a]\nplatform = \"outbox\"\n",
    );
    assert!(
        help(&d).starts_with("write an IANA time zone name"),
        "{d:?}"
    );
}

#[test]
fn europe_valencia_suggests_the_configs_spanish_zone_not_vienna() {
    let d = one_error(
        "[defaults]\ntimezone = \"Europe/Madrid\"\n[channels.a]\nplatform = \"outbox\"\ntimezone = \"Europe/Valencia\"\n",
    );
    assert!(
        help(&d)
            .starts_with("did you mean `Europe/Madrid` (the zone used elsewhere in this config)?"),
        "{d:?}"
    );
    let d =
        one_error("[defaults]\ntimezone = \"Europe/Spain\"\n[channels.a]\nplatform = \"outbox\"\n");
    assert!(
        help(&d).starts_with("did you mean `Europe/Madrid` (the zone of Spain (mainland))?"),
        "{d:?}"
    );
}

#[test]
fn a_bad_inherited_value_is_reported_once() {
    let text = "[defaults]\ntimezone = \"Nowhere/Land\"\n[channels.a]\nplatform = \"outbox\"\n[channels.b]\nplatform = \"outbox\"\n";
    let d = one_error(text);
    assert_eq!(d.line, Some(2));
}

#[test]
fn no_time_zone_anywhere_is_an_error() {
    let d = one_error("[channels.shop]\nplatform = \"outbox\"\n");
    assert_eq!(d.message, "channel `shop` has no time zone");
    assert_eq!(d.line, Some(1));
    assert!(
        help(&d).contains(
            "add `timezone = \"Europe/Madrid\"` (an IANA name) to [defaults] or to [channels.shop]"
        ),
        "{d:?}"
    );
}

#[test]
fn a_bad_slot_uses_the_slot_error() {
    let expected = Slot::parse("25:00").unwrap_err();
    let d = one_error(&format!("{BASE}slots = [\"10:00\",\n  \"25:00\"]\n"));
    assert_eq!(d.message, expected.message);
    assert_eq!(help(&d), expected.help);
    assert_eq!(d.line, Some(7));
    assert_eq!(d.column, Some(3));
}

#[test]
fn slots_must_be_an_array_of_strings() {
    let d = one_error(&format!("{BASE}slots = \"10:00\"\n"));
    assert_eq!(
        d.message,
        "`slots` must be an array of slot strings, not a string"
    );
    assert_eq!(d.line, Some(6));
    assert_eq!(help(&d), "write `slots = [\"10:00\"]`");
    let d = one_error(&format!("{BASE}slots = [10]\n"));
    assert_eq!(
        d.message,
        "`slots` must be an array of strings, not an integer"
    );
}

#[test]
fn valid_slots_are_kept_in_order() {
    let text = format!("{BASE}slots = [\"10:00\", \"Mon-Fri 17:30\", \"30 9 * * 1-5\"]\n");
    let loaded = parse_ok(&text);
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
    let specs: Vec<&str> = loaded.config.channels[0]
        .rules
        .slots
        .slots()
        .iter()
        .map(Slot::spec)
        .collect();
    assert_eq!(specs, ["10:00", "Mon-Fri 17:30", "30 9 * * 1-5"]);
}

#[test]
fn bad_durations_show_the_accepted_form() {
    let d = one_error(&format!("{BASE}min_gap = \"3 hours\"\n"));
    assert_eq!(
        d.message,
        "invalid duration \"3 hours\" for `min_gap`: unknown unit ` `"
    );
    assert_eq!(d.line, Some(6));
    assert_eq!(help(&d), duration::FORM);

    let d = one_error(&format!("{BASE}unique_window = 30\n"));
    assert_eq!(
        d.message,
        "invalid duration \"30\" for `unique_window`: the number has no unit"
    );
    assert_eq!(help(&d), duration::FORM);

    let d = one_error(&format!("{BASE}catch_up = \"-1h\"\n"));
    assert_eq!(
        d.message,
        "invalid duration \"-1h\" for `catch_up`: durations cannot be negative"
    );

    let d = one_error(&format!("{BASE}min_gap = true\n"));
    assert_eq!(
        d.message,
        "`min_gap` must be a duration string, not a boolean"
    );
    assert_eq!(help(&d), "write `min_gap = \"3h\"`");
}

#[test]
fn durations_too_long_for_the_calendar_are_config_errors_not_panics() {
    for key in ["min_gap", "unique_window", "catch_up"] {
        let d = one_error(&format!("{BASE}{key} = \"999999999d\"\n"));
        assert_eq!(
            d.message,
            format!(
                "invalid duration \"999999999d\" for `{key}`: it is too long (at most 36500d, 100 years)"
            )
        );
        assert_eq!(d.line, Some(6));
    }
}

#[test]
fn similarity_must_be_between_0_and_1() {
    for (written, ok) in [
        ("0.0", true),
        ("1", true),
        ("0.55", true),
        ("1.5", false),
        ("-0.1", false),
        ("nan", false),
        ("2", false),
    ] {
        let text = format!("{BASE}similarity = {written}\n");
        if ok {
            parse_ok(&text);
            continue;
        }
        let d = one_error(&text);
        assert_eq!(
            d.message,
            format!("`similarity = {written}` is outside 0 to 1")
        );
        assert_eq!(d.line, Some(6));
        assert!(help(&d).starts_with("write a number from 0 to 1"), "{d:?}");
    }
    let d = one_error(&format!("{BASE}similarity = \"high\"\n"));
    assert_eq!(
        d.message,
        "`similarity` must be a number between 0 and 1, not a string"
    );
}

#[test]
fn max_per_day_zero_points_to_paused() {
    let d = one_error(&format!("{BASE}max_per_day = 0\n"));
    assert_eq!(d.message, "`max_per_day = 0` would never publish");
    assert_eq!(d.line, Some(6));
    assert!(
        help(&d).starts_with("to stop a channel without removing it, set `paused = true`"),
        "{d:?}"
    );

    let d = one_error(&format!("{BASE}max_per_day = -1\n"));
    assert_eq!(d.message, "`max_per_day = -1` is out of range");
    let d = one_error(&format!("{BASE}max_per_day = 1.5\n"));
    assert_eq!(
        d.message,
        "`max_per_day` must be a whole number, not a float"
    );
}

#[test]
fn more_than_two_a_day_is_a_warning_to_earn_it() {
    let text = "[defaults]\ntimezone = \"UTC\"\nslots = []\nmax_per_day = 3\n\n[channels.a]\nplatform = \"outbox\"\n[channels.b]\nplatform = \"outbox\"\n[channels.c]\nplatform = \"outbox\"\nmax_per_day = 4\n[channels.d]\nplatform = \"outbox\"\nmax_per_day = 2\n";
    let loaded = parse_ok(text);
    let earn: Vec<&Diagnostic> = loaded
        .warnings
        .iter()
        .filter(|w| w.message.contains("posts a day"))
        .collect();
    assert_eq!(earn.len(), 2, "{earn:#?}");
    assert_eq!(
        earn[0].message,
        "channels `a`, `b` may publish 3 posts a day, more than 2"
    );
    assert_eq!(earn[0].line, Some(4));
    assert!(
        help(earn[0]).starts_with("the research says to earn it"),
        "{:?}",
        earn[0]
    );
    assert_eq!(
        earn[1].message,
        "channel `c` may publish 4 posts a day, more than 2"
    );
    assert_eq!(earn[1].line, Some(12));
    assert_eq!(loaded.config.channels[2].rules.max_per_day, 4);
    assert_eq!(loaded.config.channels[3].rules.max_per_day, 2);
}

#[test]
fn booleans_must_be_booleans() {
    let d = one_error(&format!("{BASE}paused = \"yes\"\n"));
    assert_eq!(d.message, "`paused` must be true or false, not a string");
    assert_eq!(d.line, Some(6));
    assert_eq!(
        help(&d),
        "write `paused = true` or `paused = false` (without quotes)"
    );
}

#[test]
fn channel_names_must_be_lowercase_letters_digits_and_dashes() {
    let d = one_error("[defaults]\ntimezone = \"UTC\"\n[channels.Shop_X]\nplatform = \"outbox\"\n");
    assert_eq!(d.message, "channel name `Shop_X` is not allowed");
    assert_eq!(d.line, Some(3));
    assert!(help(&d).ends_with("e.g. `shop-x`"), "{d:?}");
    let d = one_error("[defaults]\ntimezone = \"UTC\"\n[channels.-shop]\nplatform = \"outbox\"\n");
    assert_eq!(d.message, "channel name `-shop` is not allowed");
    parse_ok("[defaults]\ntimezone = \"UTC\"\n[channels.0-shop-2]\nplatform = \"outbox\"\n");
}

#[test]
fn a_config_without_channels_is_an_error() {
    let d = one_error("[defaults]\ntimezone = \"UTC\"\n");
    assert_eq!(d.message, "the config has no channels");
    assert_eq!(d.line, None);
    assert!(help(&d).contains("[channels.shop-outbox]"), "{d:?}");

    let d = one_error("[defaults]\ntimezone = \"UTC\"\n[channels]\n");
    assert_eq!(d.message, "the config has no channels");
    assert_eq!(d.line, Some(3));

    let d = one_error("");
    assert_eq!(d.message, "the config has no channels");
}

#[test]
fn a_literal_secret_is_an_error_that_never_shows_it() {
    const SECRET: &str = "xq-LITERAL-9b1c2d3e4f";
    let text = format!(
        "[defaults]\ntimezone = \"UTC\"\n[channels.shop-x]\nplatform = \"x\"\ntoken = \"{SECRET}\"\n"
    );
    let d = one_error(&text);
    assert_eq!(
        d.message,
        "`token` holds a literal secret; secrets do not belong in the config file"
    );
    assert_eq!(d.line, Some(5));
    assert!(d.source.is_none(), "the line must not be shown: {d:?}");
    assert!(help(&d).contains("{ env = \"NAME\" }"), "{d:?}");
    assert!(help(&d).contains("{ file = \"path\" }"), "{d:?}");
    assert!(help(&d).contains("{ credential = \"name\" }"), "{d:?}");
    assert_no_secret(&[d], SECRET);
}

/// Every way a secret could be written in the wrong place; none may reach any message.
#[test]
fn no_error_ever_shows_a_secret() {
    const SECRET: &str = "zz9SECRETzz9plural";
    let text = format!(
        r#"[defaults]
timezone = "UTC"
token = "{SECRET}"

[channels.a]
platform = "x"
tokn = "{SECRET}"
app_password = "{SECRET}"

[channels.b]
platform = "bluesky"
handle = "b.bsky.social"
app_password = {{ env = "{SECRET}-x" }}

[channels.c]
platform = "mastodon"
instance = "https://user:{SECRET}@m.example"
token = {{ credential = "{SECRET}/x" }}

[channels]
d = {{ platform = "x", token = "{SECRET}" }}
"#
    );
    let errs = errors(&text);
    assert!(errs.len() >= 7, "{errs:#?}");
    assert_no_secret(&errs, SECRET);
    let text = format!("[channels.x]\nplatform = \"x\"\ntoken = \"{SECRET}\n");
    assert_no_secret(&errors(&text), SECRET);
}

fn assert_no_secret(diags: &[Diagnostic], secret: &str) {
    for d in diags {
        for shown in [
            format!("{d}"),
            format!("{d:?}"),
            d.render(false),
            d.to_json().to_string(),
        ] {
            assert!(!shown.contains(secret), "secret leaked: {shown}");
        }
    }
}

#[test]
fn urls_must_be_https_except_loopback() {
    let head = "[defaults]\ntimezone = \"UTC\"\n[channels.hook]\nplatform = \"webhook\"\n";
    for ok in [
        "https://hooks.example/x",
        "http://127.0.0.1:9000/x",
        "http://127.8.9.1/x",
        "http://[::1]:80/",
        "http://localhost/x",
        "http://LOCALHOST:1/",
    ] {
        parse_ok(&format!("{head}url = \"{ok}\"\n"));
    }
    let d = one_error(&format!("{head}url = \"http://hooks.example/x\"\n"));
    assert_eq!(
        d.message,
        "`url`: plain http:// is refused for \"http://hooks.example/x\""
    );
    assert_eq!(d.line, Some(5));
    assert!(
        help(&d).starts_with("use https:// (\"https://hooks.example/x\")"),
        "{d:?}"
    );

    let d = one_error(&format!("{head}url = \"http://10.0.0.1/x\"\n"));
    assert!(d.message.contains("plain http://"), "{d:?}");

    let d = one_error(&format!("{head}url = \"hooks.example/x\"\n"));
    assert_eq!(d.message, "`url`: \"hooks.example/x\" is not a URL");
    assert_eq!(help(&d), "write the full URL: \"https://hooks.example/x\"");

    let d = one_error(&format!("{head}url = \"ftp://hooks.example/x\"\n"));
    assert!(d.message.contains("`ftp:` URLs are not supported"), "{d:?}");

    let d = one_error(&format!("{head}url = \"https://me:pw@hooks.example/x\"\n"));
    assert_eq!(d.message, "`url` carries a password in the URL");
    assert_eq!(d.line, Some(5));
    assert!(d.source.is_none());

    let d = one_error(
        "[defaults]\ntimezone = \"UTC\"\n[channels.m]\nplatform = \"mastodon\"\ninstance = \"http://mastodon.social\"\ntoken = { env = \"T\" }\n",
    );
    assert!(d.message.starts_with("`instance`: plain http://"), "{d:?}");
    let d = one_error(
        "[defaults]\ntimezone = \"UTC\"\n[channels.b]\nplatform = \"bluesky\"\nservice = \"http://bsky.social\"\nhandle = \"h.example\"\napp_password = { env = \"P\" }\n",
    );
    assert!(d.message.starts_with("`service`: plain http://"), "{d:?}");
}

#[test]
fn exec_takes_an_argument_vector_never_a_shell_string() {
    let head = "[defaults]\ntimezone = \"UTC\"\n[channels.run]\nplatform = \"exec\"\n";
    let d = one_error(&format!("{head}command = \"/usr/bin/post --fast\"\n"));
    assert_eq!(
        d.message,
        "`command` must be an argument vector, not a shell string"
    );
    assert_eq!(d.line, Some(5));
    assert!(help(&d).starts_with("write `command = [\"/usr/bin/post\", \"--fast\"]`; cadenced runs the program directly, without a shell"), "{d:?}");

    let d = one_error(&format!("{head}command = \"/usr/bin/post | logger\"\n"));
    assert!(help(&d).ends_with("for pipes, redirections or variables, put the shell line in a script and run the script"), "{d:?}");
    assert!(!help(&d).contains("\"|\""), "{d:?}");
    let d = one_error(&format!("{head}command = []\n"));
    assert_eq!(d.message, "`command` is empty");
    let d = one_error(&format!("{head}command = [\"\", \"x\"]\n"));
    assert_eq!(d.message, "the program in `command` is empty");
    let d = one_error(&format!("{head}command = [\"prog\", 3]\n"));
    assert_eq!(
        d.message,
        "`command` must be an array of strings, not an integer"
    );

    let d = one_error(&format!("{head}command = [\"prog\"]\ntimeout = \"0s\"\n"));
    assert_eq!(d.message, "`timeout` must be at least 1 s");
    assert_eq!(d.line, Some(6));
    let d = one_error(&format!("{head}command = [\"prog\"]\ntimeout = \"30\"\n"));
    assert_eq!(
        d.message,
        "invalid duration \"30\" for `timeout`: the number has no unit"
    );
}

#[test]
fn mastodon_and_bluesky_values_are_checked() {
    let masto = "[defaults]\ntimezone = \"UTC\"\n[channels.m]\nplatform = \"mastodon\"\ninstance = \"https://m.example\"\ntoken = { env = \"T\" }\n";
    let d = one_error(&format!("{masto}max_characters = 0\n"));
    assert_eq!(d.message, "`max_characters` must be between 1 and 1000000");
    assert_eq!(d.line, Some(7));

    let bsky = "[defaults]\ntimezone = \"UTC\"\n[channels.b]\nplatform = \"bluesky\"\napp_password = { env = \"P\" }\n";
    let d = one_error(&format!("{bsky}handle = \"@shop.bsky.social\"\n"));
    assert_eq!(d.message, "`handle` starts with `@`: `@shop.bsky.social`");
    assert_eq!(
        help(&d),
        "write it without the `@`: `handle = \"shop.bsky.social\"`"
    );
}

#[test]
fn malformed_credential_tables_point_at_the_line() {
    let d = one_error(
        "[defaults]\ntimezone = \"UTC\"\n[channels.shop-x]\nplatform = \"x\"\ntoken = { fil = \"T\" }\n",
    );
    assert_eq!(d.message, "`token` has an unknown source `fil`");
    assert_eq!(d.line, Some(5));
    assert!(help(&d).starts_with("did you mean `file`?"), "{d:?}");
}

#[test]
fn log_levels_are_validated() {
    let d = one_error(&format!("log_level = \"warning\"\n{BASE}"));
    assert_eq!(d.message, "unknown log level `warning`");
    assert_eq!(d.line, Some(1));
    assert_eq!(
        help(&d),
        "did you mean `warn`? Levels: error, warn, info, debug, trace, off"
    );
    let d = one_error(&format!("log_level = \"loud\"\n{BASE}"));
    assert_eq!(help(&d), "use one of error, warn, info, debug, trace, off");
    for ok in LOG_LEVELS {
        assert_eq!(
            parse_ok(&format!("log_level = \"{ok}\"\n{BASE}"))
                .config
                .log_level,
            ok
        );
    }
}

#[test]
fn wrong_types_at_the_top_are_errors() {
    let d = one_error(&format!("queue = 3\n{BASE}"));
    assert_eq!(d.message, "`queue` must be a path string, not an integer");
    let d = one_error(&format!("queue = \"\"\n{BASE}"));
    assert_eq!(d.message, "`queue` is empty");
    let d = one_error("channels = 1\n[defaults]\ntimezone = \"UTC\"\n");
    assert_eq!(d.message, "`channels` must be a table, not an integer");
    let d = one_error("[defaults]\ntimezone = \"UTC\"\n[channels]\na = 1\n");
    assert_eq!(d.message, "`channels.a` must be a table, not an integer");
    assert_eq!(d.line, Some(4));
}

// ---- locate ----

#[test]
fn locate_prefers_the_flag_then_the_variable_then_local_then_system() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let system = cwd.join("etc/cadenced.toml");
    std::fs::create_dir_all(cwd.join("config")).unwrap();
    std::fs::create_dir_all(cwd.join("etc")).unwrap();
    for f in [
        "a.toml",
        "b.toml",
        "config/cadenced.toml",
        "etc/cadenced.toml",
    ] {
        std::fs::write(cwd.join(f), "").unwrap();
    }
    let flag = Some(Path::new("a.toml"));
    let var = Some(OsStr::new("b.toml"));
    assert_eq!(
        locate_in(flag, var, cwd, &system).unwrap(),
        cwd.join("a.toml")
    );
    assert_eq!(
        locate_in(None, var, cwd, &system).unwrap(),
        cwd.join("b.toml")
    );
    assert_eq!(
        locate_in(None, Some(OsStr::new("")), cwd, &system).unwrap(),
        cwd.join("config/cadenced.toml")
    );
    assert_eq!(
        locate_in(None, None, cwd, &system).unwrap(),
        cwd.join("config/cadenced.toml")
    );
    std::fs::remove_file(cwd.join("config/cadenced.toml")).unwrap();
    assert_eq!(locate_in(None, None, cwd, &system).unwrap(), system);
    // An absolute flag is taken as is.
    let abs = cwd.join("a.toml");
    assert_eq!(
        locate_in(Some(&abs), None, Path::new("/nowhere"), &system).unwrap(),
        abs
    );
}

#[test]
fn locate_lists_where_it_looked() {
    let dir = tempfile::tempdir().unwrap();
    let system = dir.path().join("etc/cadenced.toml");
    let d = locate_in(None, None, dir.path(), &system).unwrap_err();
    assert_eq!(
        d.message,
        format!(
            "no config file: there is neither ./config/cadenced.toml here nor {}",
            system.display()
        )
    );
    assert_eq!(d.file, dir.path().join("config/cadenced.toml"));
    // The way in: init, or the installed config; no word about a source tree.
    assert!(help(&d).starts_with("run `cadenced init`"), "{d:?}");
    assert!(help(&d).contains(&system.display().to_string()), "{d:?}");
    assert!(help(&d).contains("--config PATH"), "{d:?}");
    assert!(!help(&d).contains("source"), "{d:?}");

    let d = locate_in(Some(Path::new("missing.toml")), None, dir.path(), &system).unwrap_err();
    assert_eq!(d.message, "config file not found (given by --config)");
    assert_eq!(d.file, dir.path().join("missing.toml"));
    let d = locate_in(None, Some(OsStr::new("missing.toml")), dir.path(), &system).unwrap_err();
    assert_eq!(
        d.message,
        "config file not found (given by $CADENCED_CONFIG)"
    );
}

#[test]
fn locate_uses_the_system_path_by_default() {
    let dir = tempfile::tempdir().unwrap();
    // On a machine with cadenced installed `locate` finds the system file; elsewhere it
    // says it looked there. Either way that is the path it uses.
    match locate(None, None, dir.path()) {
        Ok(path) => assert_eq!(path, Path::new(SYSTEM_CONFIG)),
        Err(d) => assert!(help(&d).contains(SYSTEM_CONFIG), "{d:?}"),
    }
}

// ---- load ----

#[test]
fn load_reports_unreadable_files() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.toml");
    let errs = load(&missing).unwrap_err();
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].message.starts_with("cannot read the config file: "),
        "{:?}",
        errs[0]
    );
    assert_eq!(errs[0].file, missing);
    assert!(help(&errs[0]).contains("--config PATH"), "{:?}", errs[0]);

    let errs = load(dir.path()).unwrap_err();
    assert_eq!(errs[0].message, "the config path is not a regular file");

    let latin1 = dir.path().join("latin1.toml");
    std::fs::write(&latin1, b"[defaults]\ntimezone = \"UTC\"\n# Espa\xf1a\n").unwrap();
    let errs = load(&latin1).unwrap_err();
    assert_eq!(errs[0].message, "the config file is not UTF-8 text");
    assert_eq!(errs[0].line, Some(3));
    assert_eq!(help(&errs[0]), "save the file as UTF-8");
}

// ---- fixtures ----

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
}

#[test]
fn the_good_fixture_loads() {
    let path = fixture("good.toml");
    let loaded = load(&path).unwrap_or_else(|e| panic!("{e:#?}"));
    let c = &loaded.config;
    let names: Vec<(&str, &str)> = c
        .channels
        .iter()
        .map(|c| (c.name.as_str(), c.platform.name()))
        .collect();
    assert_eq!(
        names,
        [
            ("announce", "webhook"),
            ("newsletter", "outbox"),
            ("publisher", "exec"),
            ("shop-bluesky", "bluesky"),
            ("shop-mastodon", "mastodon"),
            ("shop-x", "x"),
        ]
    );
    let dir = path.parent().unwrap();
    assert_eq!(
        c.queue,
        super::lexical_join(dir, std::path::Path::new("../queue"))
    );
    assert!(
        !c.queue.to_string_lossy().contains(".."),
        "{}",
        c.queue.display()
    );
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
    assert!(c.channels.iter().all(|c| !c.rules.slots.is_empty()));
}

/// One bad fixture per error class: the file, the line, the message and the help.
#[test]
fn each_bad_fixture_fails_with_its_error() {
    let cases: &[(&str, Option<usize>, &str, &str)] = &[
        ("bad-toml.toml", Some(4), "invalid TOML: ", "double quotes"),
        (
            "bad-unknown-key.toml",
            Some(8),
            "unknown key `slot` in [channels.shop]",
            "did you mean `slots`?",
        ),
        (
            "bad-other-platform-key.toml",
            Some(8),
            "`instance` is not a key of x channels; it belongs to `mastodon` channels",
            "set `platform = \"mastodon\"`",
        ),
        (
            "bad-unknown-platform.toml",
            Some(5),
            "unknown platform `mastadon`",
            "did you mean `mastodon`?",
        ),
        (
            "bad-planned-platform.toml",
            Some(5),
            "platform `instagram` is not supported yet by this version",
            "supported platforms: x, mastodon",
        ),
        (
            "bad-missing-key.toml",
            Some(4),
            "channel `shop` (mastodon platform) is missing `token`",
            "add `token = { env = \"SHOP_TOKEN\" }`",
        ),
        (
            "bad-timezone.toml",
            Some(2),
            "unknown time zone `Europe/Madird`",
            "did you mean `Europe/Madrid`?",
        ),
        (
            "bad-no-timezone.toml",
            Some(3),
            "channel `shop` has no time zone",
            "add `timezone = \"Europe/Madrid\"`",
        ),
        ("bad-slot.toml", Some(3), "25:30", ""),
        (
            "bad-duration.toml",
            Some(4),
            "invalid duration \"3\" for `min_gap`: the number has no unit",
            "\"1h30m\"",
        ),
        (
            "bad-similarity.toml",
            Some(8),
            "`similarity = 1.2` is outside 0 to 1",
            "from 0 to 1",
        ),
        (
            "bad-max-per-day.toml",
            Some(7),
            "`max_per_day = 0` would never publish",
            "`paused = true`",
        ),
        (
            "bad-channel-name.toml",
            Some(4),
            "channel name `Shop_X` is not allowed",
            "e.g. `shop-x`",
        ),
        (
            "bad-literal-secret.toml",
            Some(7),
            "`token` holds a literal secret",
            "{ env = \"NAME\" }",
        ),
        (
            "bad-url.toml",
            Some(6),
            "`url`: plain http:// is refused",
            "use https://",
        ),
        (
            "bad-exec-shell-string.toml",
            Some(6),
            "`command` must be an argument vector, not a shell string",
            "without a shell",
        ),
        (
            "bad-log-level.toml",
            Some(1),
            "unknown log level `verbose`",
            "use one of error, warn, info",
        ),
        (
            "bad-no-channels.toml",
            None,
            "the config has no channels",
            "[channels.shop-outbox]",
        ),
    ];
    let mut seen = Vec::new();
    for (file, line, message, hint) in cases {
        let path = fixture(file);
        let errs = load(&path).err().unwrap_or_else(|| panic!("{file} loaded"));
        assert_eq!(errs.len(), 1, "{file}: {errs:#?}");
        let d = &errs[0];
        assert_eq!(d.file, path, "{file}");
        assert_eq!(d.line, *line, "{file}: {d:?}");
        assert!(d.message.contains(message), "{file}: {d:?}");
        assert!(help(d).contains(hint), "{file}: {d:?}");
        seen.push(*file);
    }
    // bad-slot's help is the slot module's; it must have one.
    assert!(!help(&load(&fixture("bad-slot.toml")).unwrap_err()[0]).is_empty());
    // Every bad fixture on disk is listed above.
    let mut on_disk: Vec<String> = std::fs::read_dir(fixture(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("bad-"))
        .collect();
    on_disk.sort();
    seen.sort();
    assert_eq!(on_disk, seen);
    let d = &load(&fixture("bad-literal-secret.toml")).unwrap_err()[0];
    assert_no_secret(std::slice::from_ref(d), "hunter2-fixture-token");
}

// ---- check_credentials ----

/// A config file on disk, so `check_credentials` can point at lines.
fn config_on_disk(dir: &Path, body: &str) -> Config {
    let path = dir.join("cadenced.toml");
    std::fs::write(
        &path,
        format!("[defaults]\ntimezone = \"UTC\"\nslots = []\n{body}"),
    )
    .unwrap();
    load(&path).unwrap_or_else(|e| panic!("{e:#?}")).config
}

#[test]
fn readable_credentials_give_no_warning() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("x-token");
    std::fs::write(&token, "s3cret\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let creds = dir.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(creds.join("bsky"), "pw").unwrap();
    let config = config_on_disk(
        dir.path(),
        "[channels.x]\nplatform = \"x\"\ntoken = { file = \"x-token\" }\n[channels.m]\nplatform = \"mastodon\"\ninstance = \"https://m.example\"\ntoken = { env = \"M_TOKEN\" }\n[channels.b]\nplatform = \"bluesky\"\nhandle = \"b.example\"\napp_password = { credential = \"bsky\" }\n",
    );
    let env = |name: &str| (name == "M_TOKEN").then(|| "m".to_string());
    let warnings = check_credentials(&config, env, Some(&creds));
    assert!(warnings.is_empty(), "{warnings:#?}");
}

#[test]
fn unreadable_credentials_are_warnings_with_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_on_disk(
        dir.path(),
        "[channels.x]\nplatform = \"x\"\ntoken = { file = \"nope\" }\n[channels.m]\nplatform = \"mastodon\"\ninstance = \"https://m.example\"\ntoken = { env = \"M_TOKEN\" }\n[channels.b]\nplatform = \"bluesky\"\nhandle = \"b.example\"\napp_password = { credential = \"bsky\" }\n",
    );
    let warnings = check_credentials(&config, |_| None, None);
    assert_eq!(warnings.len(), 3, "{warnings:#?}");
    assert!(warnings.iter().all(|w| w.severity == Severity::Warning));
    // Channels come sorted: b, m, x.
    let [b, m, x] = &warnings[..] else {
        unreachable!()
    };
    assert_eq!(
        b.message,
        "cannot read the `app_password` of channel `b` from here: systemd credential `bsky` is not available here: $CREDENTIALS_DIRECTORY is not set (systemd sets it for a service with `LoadCredential=bsky:/path`)"
    );
    assert_eq!(b.line, Some(14));
    assert!(
        help(b).starts_with("add `LoadCredential=bsky:/path/to/secret` to the unit"),
        "{b:?}"
    );
    assert_eq!(
        m.message,
        "cannot read the `token` of channel `m` from here: environment variable `M_TOKEN` is not set"
    );
    assert_eq!(m.line, Some(10));
    assert!(
        help(m).starts_with("set `M_TOKEN` in the service's environment"),
        "{m:?}"
    );
    assert!(
        x.message.starts_with(&format!(
            "cannot read the `token` of channel `x` from here: cannot read file `{}`",
            dir.path().join("nope").display()
        )),
        "{x:?}"
    );
    assert_eq!(x.line, Some(6));
    assert!(help(x).contains("chmod 600"), "{x:?}");
}

#[test]
fn a_credential_file_others_can_read_is_a_warning_that_never_shows_it() {
    use std::os::unix::fs::PermissionsExt;
    const SECRET: &str = "Qm9vLXRva2VuLXNlY3JldA-77";
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("x-token");
    std::fs::write(&token, format!("{SECRET}\n")).unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = config_on_disk(
        dir.path(),
        "[channels.x]\nplatform = \"x\"\ntoken = { file = \"x-token\" }\n",
    );
    let warnings = check_credentials(&config, |_| Some(SECRET.to_string()), None);
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    let w = &warnings[0];
    assert_eq!(
        w.message,
        format!(
            "the `token` file of channel `x` can be read by every user: `{}`",
            token.display()
        )
    );
    assert_eq!(w.line, Some(6));
    assert_eq!(
        help(w),
        format!(
            "chmod 600 {} (and make the cadenced user its owner)",
            token.display()
        )
    );
    assert_no_secret(&warnings, SECRET);
}

#[test]
fn credential_warnings_never_show_a_secret() {
    use std::os::unix::fs::PermissionsExt;
    const SECRET: &str = "never-SHOW-this-0xdeadbeef";
    let dir = tempfile::tempdir().unwrap();
    // A secret file that is not UTF-8 and readable by all; an environment variable that is
    // set to the secret for another name; a credentials folder holding an empty file.
    let mut bytes = SECRET.as_bytes().to_vec();
    bytes.push(0xfe);
    std::fs::write(dir.path().join("bin-token"), bytes).unwrap();
    std::fs::set_permissions(
        dir.path().join("bin-token"),
        std::fs::Permissions::from_mode(0o604),
    )
    .unwrap();
    let creds = dir.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(creds.join("empty"), "\n").unwrap();
    let config = config_on_disk(
        dir.path(),
        "[channels.x]\nplatform = \"x\"\ntoken = { file = \"bin-token\" }\n[channels.m]\nplatform = \"mastodon\"\ninstance = \"https://m.example\"\ntoken = { env = \"EMPTY\" }\n[channels.b]\nplatform = \"bluesky\"\nhandle = \"b.example\"\napp_password = { credential = \"empty\" }\n",
    );
    let env = |name: &str| match name {
        "EMPTY" => Some(String::new()),
        _ => Some(SECRET.to_string()),
    };
    let warnings = check_credentials(&config, env, Some(&creds));
    assert_eq!(warnings.len(), 4, "{warnings:#?}");
    assert_no_secret(&warnings, SECRET);
    assert!(
        warnings[0]
            .message
            .ends_with("systemd credential `empty` is empty"),
        "{:?}",
        warnings[0]
    );
    assert!(
        warnings[1]
            .message
            .ends_with("environment variable `EMPTY` is empty"),
        "{:?}",
        warnings[1]
    );
    assert!(
        warnings[2].message.contains("can be read by every user"),
        "{:?}",
        warnings[2]
    );
    assert!(
        warnings[3].message.ends_with("is not UTF-8 text"),
        "{:?}",
        warnings[3]
    );
}

#[test]
fn dry_run_channels_need_no_readable_credential() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("x-token");
    std::fs::write(&token, "t").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = config_on_disk(
        dir.path(),
        "[channels.m]\nplatform = \"mastodon\"\ninstance = \"https://m.example\"\ntoken = { env = \"M_TOKEN\" }\ndry_run = true\n[channels.x]\nplatform = \"x\"\ntoken = { file = \"x-token\" }\ndry_run = true\n",
    );
    let warnings = check_credentials(&config, |_| None, None);
    // Only the file that every user can read: that is a problem even in a dry run.
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].message.contains("can be read by every user"),
        "{:?}",
        warnings[0]
    );
}
