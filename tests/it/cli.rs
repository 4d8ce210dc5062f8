//! The real binary: `check` exit codes and messages, `plan --json` shape and content.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use predicates::prelude::*;
use serde::Deserialize;

use crate::support::{Project, repo};

/// `plan --json`, pinned: exactly these fields, and exactly one of `at` and `held`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanLine {
    channel: String,
    file: String,
    at: Option<String>,
    held: Option<String>,
}

fn plan_lines(stdout: &[u8]) -> Vec<PlanLine> {
    let text = String::from_utf8(stdout.to_vec()).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<PlanLine>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .inspect(|l| assert!(l.at.is_some() != l.held.is_some(), "{l:?}"))
        .collect()
}

const SOCIAL: &str = r#"
[defaults]
timezone = "Europe/Madrid"
slots = ["10:00", "17:30"]

[channels.shop-x]
platform = "x"
token = { env = "SHOP_X_TOKEN" }
dry_run = true

[channels.shop-mastodon]
platform = "mastodon"
instance = "https://mastodon.social"
token = { env = "SHOP_MASTODON_TOKEN" }
dry_run = true
"#;

#[test]
fn the_bundled_example_checks_clean() {
    let mut cmd = assert_cmd::Command::cargo_bin("cadenced").unwrap();
    cmd.current_dir(repo())
        .env("NO_COLOR", "1")
        .args(["check", "--config", "config/cadenced.toml"])
        .assert()
        .success()
        .stdout(predicate::str::contains("0 held, 0 invalid"));
}

#[test]
fn the_bundled_example_plans() {
    let mut cmd = assert_cmd::Command::cargo_bin("cadenced").unwrap();
    let out = cmd
        .current_dir(repo())
        .args([
            "plan",
            "--config",
            "config/cadenced.toml",
            "--from",
            "2026-11-23T00:00:00+01:00",
            "--days",
            "7",
            "--json",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let lines = plan_lines(&out);
    assert!(
        lines.iter().all(|l| l.held.is_none()),
        "the example holds nothing"
    );
    assert!(lines.iter().any(|l| l.channel == "shop-bluesky"));
}

#[test]
fn new_york_across_the_spring_change_keeps_cap_gap_and_slots() {
    let p = Project::new(
        r#"
[defaults]
timezone = "America/New_York"
max_per_day = 2
min_gap = "3h"

[channels.ny]
platform = "outbox"
slots = ["01:30", "02:30", "10:00", "16:00"]

[channels.ny-late]
platform = "outbox"
slots = ["02:30", "16:00"]
"#,
    );
    const TOPICS: [&str; 9] = [
        "New trail runners arrived today",
        "Suede care tips for rainy weeks",
        "Meet Ana, who repairs our soles",
        "Weekend hours change on Saturday",
        "Five ways to lace for wide feet",
        "Our recycled canvas line explained",
        "Kids sizes restocked in every colour",
        "Workshop: fix your eyelets with us",
        "Customer photos from the spring hike",
    ];
    for (i, topic) in TOPICS.iter().enumerate() {
        p.post(&format!("ny/{i:03}.md"), &format!("{topic}."));
        p.post(
            &format!("ny-late/{i:03}.md"),
            &format!("{} — see you there!", topic.to_uppercase()),
        );
    }
    let out = p
        .cmd(&[
            "plan",
            "--from",
            "2027-03-13T00:00:00-05:00",
            "--days",
            "3",
            "--json",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let lines = plan_lines(&out);
    let tz = TimeZone::get("America/New_York").unwrap();
    let mut by_channel: BTreeMap<&str, Vec<jiff::Zoned>> = BTreeMap::new();
    for l in &lines {
        assert!(l.held.is_none(), "{l:?}");
        let at: Timestamp = l.at.as_ref().unwrap().parse().unwrap();
        assert!(l.file.starts_with(&format!("{}/", l.channel)), "{l:?}");
        by_channel
            .entry(l.channel.as_str())
            .or_default()
            .push(at.to_zoned(tz.clone()));
    }
    for (channel, times) in &by_channel {
        for w in times.windows(2) {
            assert!(
                w[1].timestamp().duration_since(w[0].timestamp())
                    >= jiff::SignedDuration::from_hours(3),
                "{channel}: {} then {}",
                w[0],
                w[1]
            );
        }
        let mut per_day: BTreeMap<jiff::civil::Date, usize> = BTreeMap::new();
        for t in times {
            *per_day.entry(t.date()).or_default() += 1;
        }
        assert!(per_day.values().all(|n| *n <= 2), "{channel}: {per_day:?}");
    }
    let walls = |c: &str| -> Vec<String> {
        by_channel[c]
            .iter()
            .map(|t| t.strftime("%d %H:%M %:z").to_string())
            .collect()
    };
    assert_eq!(
        walls("ny"),
        [
            "13 01:30 -05:00",
            "13 10:00 -05:00",
            "14 01:30 -05:00",
            "14 10:00 -04:00",
            "15 01:30 -04:00",
            "15 10:00 -04:00"
        ]
    );
    // 02:30 does not exist on 14 March: the slot fires at 03:00 EDT.
    assert_eq!(
        walls("ny-late"),
        [
            "13 02:30 -05:00",
            "13 16:00 -05:00",
            "14 03:00 -04:00",
            "14 16:00 -04:00",
            "15 02:30 -04:00",
            "15 16:00 -04:00"
        ]
    );
}

#[test]
fn the_same_text_for_x_and_mastodon_holds_exactly_one_naming_the_other() {
    let p = Project::new(SOCIAL);
    let text = "Black Friday: 30% off all sneakers until midnight, in the shop and online.\n";
    let first = p.post("shop-x/black-friday.md", text);
    let second = p.post("shop-mastodon/black-friday.md", text);
    // The x file was there first.
    let earlier = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_790_000_000);
    std::fs::File::options()
        .write(true)
        .open(&first)
        .unwrap()
        .set_modified(earlier)
        .unwrap();
    drop(second);

    p.cmd(&["check"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "queue/shop-mastodon/black-friday.md",
        ))
        .stdout(predicate::str::contains("shop-x/black-friday.md"))
        .stdout(predicate::str::contains("rewrite this post for mastodon"))
        .stdout(predicate::str::contains("1 held"));

    let out = p
        .cmd(&["plan", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let held: Vec<PlanLine> = plan_lines(&out)
        .into_iter()
        .filter(|l| l.held.is_some())
        .collect();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].file, "shop-mastodon/black-friday.md");
    assert!(
        held[0]
            .held
            .as_ref()
            .unwrap()
            .contains("shop-x/black-friday.md")
    );
}

#[test]
fn an_invalid_post_is_a_problem_with_file_line_and_hint() {
    let p = Project::new(SOCIAL);
    p.post(
        "shop-x/good.md",
        "A perfectly fine post about our new trail shoes.\n",
    );
    p.post(
        "shop-x/bad.md",
        "+++\nprority = 2\n+++\nHello there, a post with a typo in its front matter.\n",
    );
    p.cmd(&["check"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("queue/shop-x/bad.md:2"))
        .stdout(predicate::str::contains("priority"))
        .stdout(predicate::str::contains("1 invalid"));
}

#[test]
fn a_post_over_the_platform_limit_is_held() {
    let p = Project::new(SOCIAL);
    // 150 CJK characters weigh 300 on X.
    p.post("shop-x/long.md", &"冬".repeat(150));
    p.cmd(&["check"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("queue/shop-x/long.md"))
        .stdout(predicate::str::contains("280"));
}

#[test]
fn a_broken_config_is_a_usage_error_with_its_line() {
    let p = Project::new(&format!(
        "{SOCIAL}\n[channels.shop-bluesky]\nplatform = \"bluesky\"\nhandle = \"a.test\"\napp_pasword = {{ env = \"X\" }}\n"
    ));
    p.cmd(&["check"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cadenced.toml:"))
        .stderr(predicate::str::contains("app_password"));
}

#[test]
fn warnings_alone_pass_unless_strict() {
    let p = Project::new(&SOCIAL.replace(
        "slots = [\"10:00\", \"17:30\"]",
        "slots = [\"10:00\", \"17:30\"]\nmax_per_day = 3",
    ));
    p.cmd(&["check"])
        .assert()
        .success()
        .stdout(predicate::str::contains("max_per_day"));
    p.cmd(&["check", "--strict"]).assert().code(1);
}

#[test]
fn check_json_is_one_object_per_line_ending_with_a_summary() {
    let p = Project::new(SOCIAL);
    p.post("shop-x/bad.md", "---\ntitle: yaml\n---\nHello\n");
    let out = p
        .cmd(&["check", "--json"])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    let values: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let last = values.last().unwrap();
    assert_eq!(last["summary"]["invalid"], 1);
    let problem = values
        .iter()
        .find(|v| v["file"] == "queue/shop-x/bad.md")
        .expect("the bad file");
    assert_eq!(problem["severity"], "error");
    assert!(
        problem["help"].as_str().unwrap().contains("+++"),
        "{problem}"
    );
}

#[test]
fn a_missing_config_says_where_it_looked() {
    let p = Project::new(SOCIAL);
    let mut cmd = assert_cmd::Command::cargo_bin("cadenced").unwrap();
    cmd.current_dir(p.root())
        .env_remove("CADENCED_CONFIG")
        .args(["check", "--config", "nowhere/cadenced.toml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("nowhere/cadenced.toml"));
}

#[test]
fn the_demo_publishes_the_example_and_prints_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let out = assert_cmd::Command::cargo_bin("cadenced")
        .unwrap()
        .current_dir(tmp.path())
        .env("TMPDIR", tmp.path())
        .env_remove("CADENCED_CONFIG")
        .args(["demo", "--seconds", "60"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    // Every bundled post, on any date: the demo moves the example's appointments to its start.
    let published = text.lines().filter(|l| l.contains(" published ")).count();
    assert_eq!(published, 7, "{text}");
    assert!(!text.contains("expired"), "{text}");
    for file in [
        "shop-x/002-winter-care.md",
        "shop-mastodon/002-winter-sale-zh.md",
    ] {
        assert!(
            text.lines()
                .any(|l| l.contains("published") && l.contains(file)),
            "{file}: {text}"
        );
    }
    // Everything it wrote is inside its own temporary folder.
    let demo = std::fs::read_dir(tmp.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(
        demo.join("queue/shop-x/published/002-winter-care.md")
            .exists()
    );
    assert!(
        std::fs::read_dir(demo.join("outbox/shop-x"))
            .unwrap()
            .count()
            >= 1
    );
}

#[test]
fn check_does_not_call_a_post_whose_time_has_passed_just_ready() {
    let p = Project::new(SOCIAL);
    #[allow(clippy::disallowed_methods)] // the binary reads the real clock; so does the test
    let now = Timestamp::now();
    let madrid = TimeZone::get("Europe/Madrid").unwrap();
    let write = |name: &str, ago: jiff::SignedDuration, text: &str| {
        let at = (now - ago).to_zoned(madrid.clone());
        p.post(
            &format!("shop-x/{name}"),
            &format!(
                "+++\nat = \"{}\"\n+++\n{text}\n",
                at.strftime("%Y-%m-%dT%H:%M:%S")
            ),
        );
        at.timestamp()
    };
    let late = write(
        "late.md",
        jiff::SignedDuration::from_hours(3),
        "Three hours late and past the catch-up window.",
    );
    write(
        "recent.md",
        jiff::SignedDuration::from_mins(10),
        "Ten minutes late, still within catch-up.",
    );
    let out = p
        .cmd(&["check"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    let shown = cadenced::cadence::day::show(late, &madrid);
    assert!(
        text.contains(&format!(
            "its time, {shown}, has passed: it goes out at one of the channel's slots instead"
        )),
        "{text}"
    );
    assert!(
        text.contains("as soon as the daily cap and the minimum gap allow"),
        "{text}"
    );
    assert!(text.contains("2 ready (2 overdue)"), "{text}");
}

#[test]
fn demo_refuses_a_config_instead_of_ignoring_it() {
    let p = Project::new(SOCIAL);
    p.cmd(&["demo"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("runs the bundled example"))
        .stderr(predicate::str::contains("cadenced plan --config"));
}

#[test]
fn completions_load_in_bash_and_name_every_subcommand() {
    let out = assert_cmd::Command::cargo_bin("cadenced")
        .unwrap()
        .args(["completions", "bash"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let script = String::from_utf8(out).unwrap();
    for sub in ["run", "check", "plan", "status", "completions"] {
        assert!(script.contains(sub), "{sub}");
    }
    // bash itself accepts the script and registers the completion.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cadenced.bash");
    std::fs::write(&path, &script).unwrap();
    let bash = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p cadenced", path.display()))
        .output()
        .unwrap();
    assert!(bash.status.success(), "{bash:?}");
    assert!(String::from_utf8_lossy(&bash.stdout).contains("cadenced"));
    for (shell, marker) in [
        ("zsh", "#compdef cadenced"),
        ("fish", "complete -c cadenced"),
    ] {
        assert_cmd::Command::cargo_bin("cadenced")
            .unwrap()
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(predicate::str::contains(marker));
    }
}

#[test]
fn manpages_render_without_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let pages = cadenced::cli::manual::write_pages(dir.path()).unwrap();
    assert!(pages.len() >= 12, "{pages:?}");
    // groff, where installed, reads every page without a warning (as lintian's check does).
    let Ok(probe) = std::process::Command::new("groff")
        .arg("--version")
        .output()
    else {
        return;
    };
    assert!(probe.status.success());
    for page in pages {
        let out = std::process::Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z", "-k"])
            .arg(&page)
            .output()
            .unwrap();
        assert!(
            out.stderr.is_empty(),
            "{}: {}",
            page.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn init_yes_writes_a_folder_that_check_passes_from_inside() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("myshop");
    let init = |extra: &[&str]| {
        let mut cmd = assert_cmd::Command::cargo_bin("cadenced").unwrap();
        cmd.current_dir(tmp.path())
            .env_remove("CADENCED_CONFIG")
            .env("NO_COLOR", "1")
            .args(["init", "myshop", "--yes", "--timezone", "America/New_York"])
            .args(extra);
        cmd
    };
    init(&[
        "--channel",
        "shop-x:x",
        "--channel",
        "shop-mastodon:mastodon",
        "--channel",
        "shop-bluesky:bluesky",
        "--channel",
        "newsletter:outbox",
    ])
    .assert()
    .success()
    .stdout(predicate::str::contains(
        "4 channels, 4 queued files: 4 ready",
    ));
    for channel in ["shop-x", "shop-mastodon", "shop-bluesky", "newsletter"] {
        assert!(
            dir.join("queue")
                .join(channel)
                .join("001-hello.md")
                .is_file()
        );
        assert!(dir.join("queue").join(channel).join("drafts").is_dir());
    }
    // From the new folder, `check` finds ./config/cadenced.toml by itself.
    assert_cmd::Command::cargo_bin("cadenced")
        .unwrap()
        .current_dir(&dir)
        .env_remove("CADENCED_CONFIG")
        .env("NO_COLOR", "1")
        .args(["check", "--strict"])
        .assert()
        .success()
        .stdout(predicate::str::contains("0 held, 0 invalid"));
    // Running it again never overwrites the config.
    let before = std::fs::read(dir.join("config/cadenced.toml")).unwrap();
    init(&[])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("already exists"));
    assert_eq!(
        std::fs::read(dir.join("config/cadenced.toml")).unwrap(),
        before
    );
}

#[test]
fn plan_and_status_headers_are_in_the_channels_zone_not_utc() {
    let p = Project::new(SOCIAL);
    p.cmd(&["plan", "--from", "2026-11-23T00:00:00+01:00", "--days", "1"])
        .assert()
        .success()
        .stdout(predicate::str::contains("from Mon 2026-11-23 00:00 CET"))
        .stdout(predicate::str::contains("UTC").not());
    p.cmd(&["status"])
        .assert()
        .stdout(predicate::str::contains("Status at "))
        .stdout(
            predicate::str::is_match(r"Status at \w{3} \d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)? CES?T")
                .unwrap(),
        );
}

#[test]
fn check_reports_every_error_of_a_post_file_not_only_the_first() {
    let p = Project::new(SOCIAL);
    p.post(
        "shop-x/sale.md",
        "+++\nlnik = \"https://shop.example/\"\npriority = \"high\"\n+++\nSale today.\n",
    );
    let out = p
        .cmd(&["check", "--json"])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let lines: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let problems: Vec<(u64, &str)> = lines
        .iter()
        .filter(|v| v["file"] == "queue/shop-x/sale.md")
        .map(|v| (v["line"].as_u64().unwrap(), v["help"].as_str().unwrap()))
        .collect();
    assert_eq!(problems.len(), 2, "{lines:?}");
    assert_eq!(problems[0], (2, "did you mean `link`?"));
    assert_eq!(problems[1].0, 3);
    let summary = &lines.last().unwrap()["summary"];
    assert_eq!(summary["invalid"], 1, "one file");
    assert_eq!(summary["errors"], 2, "two problems");
    // The human output shows both too.
    p.cmd(&["check"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("unknown front-matter key `lnik`"))
        .stdout(predicate::str::contains(
            "`priority` must be a whole number, not a string",
        ));
}

#[test]
fn no_config_points_at_init_and_the_installed_config_not_the_source_tree() {
    if std::path::Path::new("/etc/cadenced/cadenced.toml").exists() {
        return; // an installed package's config would be found instead
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = assert_cmd::Command::cargo_bin("cadenced")
        .unwrap()
        .current_dir(tmp.path())
        .env_remove("CADENCED_CONFIG")
        .env("NO_COLOR", "1")
        .arg("check")
        .assert()
        .code(2)
        .get_output()
        .stderr
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("cadenced init"), "{text}");
    assert!(text.contains("/etc/cadenced/cadenced.toml"), "{text}");
    assert!(!text.contains("source"), "{text}");
}

/// A line break in a file name printed the rest of the name as a line of its own in the
/// daemon's log (`…ERROR forged line.md` looked like the daemon's), and an escape sequence
/// in one recoloured the terminal of whoever ran `plan`. Such a file is now a problem shown
/// with its name escaped, and never a post.
#[test]
fn a_line_break_or_escape_in_a_file_name_forges_no_line_and_reaches_no_terminal() {
    let p = Project::new(SOCIAL);
    p.post(
        "shop-x/evil\n2026-11-29T00:00:00Z ERROR forged line.md",
        "A post.\n",
    );
    p.post("shop-x/a\u{1b}[2Jred.md", "Another post.\n");
    p.post("shop-x/fine.md", "A post with a plain name.\n");
    for args in [&["check"][..], &["plan"][..]] {
        let out = p.cmd(args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("2026-11-29T00:00:00Z ERROR")),
            "{args:?}: {text}"
        );
        assert!(!text.contains('\u{1b}'), "{args:?}: {text}");
        if args == ["check"] {
            assert!(
                text.contains(r"evil\n2026-11-29T00:00:00Z ERROR forged line.md"),
                "{text}"
            );
            assert!(text.contains(r"a\u{1b}[2Jred.md"), "{text}");
        } else {
            assert!(text.contains("shop-x/fine.md"), "{text}");
        }
    }
}
