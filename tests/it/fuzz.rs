//! Part of the reliability suite: the post-file and config parsers, and what reads their
//! output (time resolution, review, the plan's simulation), fuzzed with proptest. Nothing a
//! person can write may panic them.
//!
//! Three kinds of input: arbitrary bytes; mutations (bytes flipped, inserted, deleted,
//! lines swapped) of a seed corpus kept in the repository (the example queue and config,
//! the config fixtures, `tests/data/fuzz/`); and files built from the formats' own grammar
//! with hostile values (far dates, huge numbers, odd zones, cron fields out of range, every
//! line end, invisible characters), which reach the code behind the parsers. `cases` is
//! modest here; `CADENCED_LONG_TESTS=1` runs 20 times as many (README, "Tests").

use std::path::{Path, PathBuf};

use cadenced::cadence::simulate;
use cadenced::config;
use cadenced::post::{self, Format};
use cadenced::queue::{Accepted, QueuedFile, Scan};
use cadenced::review::{self, LogView};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

use crate::support::repo;

/// Cases per property: modest in CI, many more on request.
fn cases(base: u32) -> u32 {
    if std::env::var_os("CADENCED_LONG_TESTS").is_some_and(|v| !v.is_empty() && v != "0") {
        base * 20
    } else {
        base
    }
}

fn config_cases(base: u32) -> ProptestConfig {
    ProptestConfig {
        cases: cases(base),
        ..ProptestConfig::default()
    }
}

/// The seed corpus: every file under the given folders of the repository.
fn corpus(folders: &[&str], extensions: &[&str]) -> Vec<Vec<u8>> {
    let mut files = Vec::new();
    let mut stack: Vec<PathBuf> = folders.iter().map(|f| repo().join(f)).collect();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .extension()
                .is_some_and(|e| extensions.iter().any(|x| e == *x))
            {
                files.push(std::fs::read(&path).unwrap());
            }
        }
    }
    files.sort();
    assert!(!files.is_empty(), "no seed corpus under {folders:?}");
    files
}

fn post_corpus() -> Vec<Vec<u8>> {
    corpus(&["queue", "tests/data/fuzz/posts"], &["md", "txt"])
}

fn config_corpus() -> Vec<Vec<u8>> {
    corpus(
        &["config", "tests/fixtures/config", "tests/data/fuzz/configs"],
        &["toml"],
    )
}

/// One edit of a byte string.
#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    SwapLines(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let interesting = prop::sample::select(vec![
        b"+++\n".to_vec(),
        b"\r".to_vec(),
        b"\r\n".to_vec(),
        b"\"".to_vec(),
        b"[".to_vec(),
        b"]".to_vec(),
        b"{".to_vec(),
        b"=".to_vec(),
        b"\n[platform]\n".to_vec(),
        "\u{200D}".as_bytes().to_vec(),
        "\u{202E}".as_bytes().to_vec(),
        "\u{FEFF}".as_bytes().to_vec(),
        "冬".as_bytes().to_vec(),
        b"\xff\xfe".to_vec(),
        b"\0".to_vec(),
        b"9999-12-31T23:59".to_vec(),
        b"-009999-01-01T00:00".to_vec(),
        b"99999999999999999999".to_vec(),
        b"999999999d".to_vec(),
        b"nan".to_vec(),
        b"inf".to_vec(),
        b"* * * * * *".to_vec(),
    ]);
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Flip(i, b)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, bytes)| Edit::Insert(i, bytes)),
        (any::<usize>(), interesting).prop_map(|(i, bytes)| Edit::Insert(i, bytes)),
        (any::<usize>(), 1usize..64).prop_map(|(i, n)| Edit::Delete(i, n)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
    ]
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let len = bytes.len();
        match e {
            Edit::Flip(i, b) if len > 0 => bytes[i % len] ^= b,
            Edit::Insert(i, ins) => {
                let at = i % (len + 1);
                bytes.splice(at..at, ins.iter().copied());
            }
            Edit::Delete(i, n) if len > 0 => {
                let at = i % len;
                bytes.drain(at..(at + n).min(len));
            }
            Edit::SwapLines(a, b) => {
                let mut lines: Vec<Vec<u8>> =
                    bytes.split(|&c| c == b'\n').map(<[u8]>::to_vec).collect();
                let n = lines.len();
                lines.swap(a % n, b % n);
                bytes = lines.join(&b'\n');
            }
            _ => {}
        }
    }
    bytes
}

fn mutated(corpus: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(corpus),
        prop::collection::vec(edit(), 1..6),
    )
        .prop_map(|(seed, edits)| apply(seed, &edits))
}

// --- the post-file grammar ----------------------------------------------------------------

/// Text with the characters that have broken parsers and counters: CJK, emoji sequences,
/// joiners, direction controls, combining marks, line ends of every kind.
fn hostile_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[a-zA-Z0-9 .,!?#@:/_-]{0,12}",
        "[冬季促销全场运动鞋八折セール]{0,6}",
        Just("👩\u{200D}💻".to_string()),
        Just("\u{200D}\u{200B}\u{2060}\u{FEFF}".to_string()),
        Just("\u{202E}\u{2066}\u{2069}\u{200F}".to_string()),
        Just("e\u{301}\u{FE0F}".to_string()),
        Just("\r".to_string()),
        Just("\r\n".to_string()),
        Just("\n".to_string()),
        Just("+++".to_string()),
        Just("https://shop.example/a?b=c#d".to_string()),
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|p| p.concat())
}

/// A date-time written in any shape, with years from the whole of jiff's range.
fn any_time() -> impl Strategy<Value = String> {
    (
        -9999i32..=9999,
        0u32..14,
        0u32..33,
        0u32..26,
        0u32..62,
        prop::sample::select(vec!["", "Z", "+14:00", "-12:00", "+01:00", "+99:99", ":30"]),
        prop::sample::select(vec!["T", " ", "t"]),
    )
        .prop_map(|(y, mo, d, h, mi, off, sep)| {
            let year = if y < 0 {
                format!("-{:06}", -y)
            } else {
                format!("{y:04}")
            };
            format!("{year}-{mo:02}-{d:02}{sep}{h:02}:{mi:02}{off}")
        })
}

fn toml_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        any_time().prop_map(|t| format!("\"{t}\"")),
        any_time(),
        any::<i64>().prop_map(|i| i.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        Just("nan".to_string()),
        Just("-inf".to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        hostile_text().prop_map(|t| format!("{t:?}")),
        "[a-z./_]{0,20}".prop_map(|t| format!("\"{t}\"")),
        Just("\"https://shop.example/sale\"".to_string()),
        Just("\"pt-BR\"".to_string()),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
            prop::collection::vec(
                (
                    prop::sample::select(vec!["path", "alt", "x", "visibility"]),
                    inner
                ),
                0..3
            )
            .prop_map(|kv| {
                let body: Vec<String> = kv.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                format!("{{ {} }}", body.join(", "))
            }),
        ]
    })
}

fn post_file() -> impl Strategy<Value = Vec<u8>> {
    let key = prop::sample::select(vec![
        "at", "expires", "priority", "media", "link", "lang", "platform", "prority", "date",
    ]);
    (
        prop::collection::vec((key, toml_value()), 0..6),
        prop::option::of("[a-z_]{1,10} = \"[a-z]{0,6}\""),
        hostile_text(),
        prop::sample::select(vec!["\n", "\r\n", "\r"]),
        prop::sample::select(vec!["+++", "---", "", "\u{feff}+++"]),
    )
        .prop_map(|(front, platform_line, body, eol, fence)| {
            let mut out = String::new();
            if !fence.is_empty() {
                out.push_str(fence);
                out.push_str(eol);
                for (k, v) in &front {
                    out.push_str(&format!("{k} = {v}{eol}"));
                }
                if let Some(line) = platform_line {
                    out.push_str(&format!("[platform]{eol}{line}{eol}"));
                }
                out.push_str(fence.trim_start_matches('\u{feff}'));
                out.push_str(eol);
            }
            out.push_str(&body);
            out.into_bytes()
        })
}

// --- the config grammar -------------------------------------------------------------------

/// Mostly valid values (so the code behind the parser runs), often at the edges, and
/// sometimes plainly wrong.
fn duration_text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (0u32..1000, prop::sample::select(vec!["s", "m", "h", "d"]))
            .prop_map(|(n, u)| format!("\"{n}{u}\"")),
        2 => Just("\"36500d\"".to_string()),
        1 => Just("\"1h30m\"".to_string()),
        1 => (any::<u64>(), prop::sample::select(vec!["s", "m", "h", "d", "w", ""]))
            .prop_map(|(n, u)| format!("\"{n}{u}\"")),
        1 => Just("\"-3h\"".to_string()),
        1 => any::<i64>().prop_map(|n| n.to_string()),
    ]
}

fn slot_text() -> impl Strategy<Value = String> {
    let field = prop_oneof![
        Just("*".to_string()),
        (0u32..100).prop_map(|n| n.to_string()),
        (1u32..100).prop_map(|n| format!("*/{n}")),
        (0u32..70, 0u32..70).prop_map(|(a, b)| format!("{a}-{b}")),
        Just("Mon-Fri".to_string()),
        Just("L".to_string()),
        Just("?".to_string()),
    ];
    prop_oneof![
        4 => (0u32..24, 0u32..60).prop_map(|(h, m)| format!("\"{h:02}:{m:02}\"")),
        2 => (0u32..24, 0u32..60).prop_map(|(h, m)| format!("\"Sat-Sun {h:02}:{m:02}\"")),
        1 => (0u32..30, 0u32..70).prop_map(|(h, m)| format!("\"{h:02}:{m:02}\"")),
        2 => prop::collection::vec(field, 5..=7).prop_map(|f| format!("\"{}\"", f.join(" "))),
        1 => "[ -~]{0,16}".prop_map(|s| format!("{s:?}")),
    ]
}

const ZONES: [&str; 12] = [
    "Europe/Madrid",
    "Europe/London",
    "Asia/Kolkata",
    "America/Sao_Paulo",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Pacific/Kiritimati",
    "Etc/GMT+12",
    "UTC",
    "Mars/Olympus",
];

fn config_file() -> impl Strategy<Value = String> {
    let common = (
        prop::sample::select(ZONES.to_vec()),
        prop::collection::vec(slot_text(), 0..3),
        prop_oneof![
            1 => any::<i64>().prop_map(|n| n.to_string()),
            6 => (1i64..5).prop_map(|n| n.to_string()),
            1 => Just("4294967295".to_string()),
        ],
        duration_text(),
        duration_text(),
        duration_text(),
        prop_oneof![
            1 => any::<f64>().prop_map(|f| format!("{f:?}")),
            6 => (0.0f64..=1.0).prop_map(|f| format!("{f:?}")),
        ],
    );
    let channel = (
        "[a-z][a-z0-9-]{0,8}",
        prop_oneof![
            8 => prop::sample::select(vec!["outbox", "webhook", "mastodon", "x", "bluesky", "exec"]),
            1 => Just("fax"),
        ],
        prop::option::of(duration_text()),
        prop::option::of(slot_text()),
    );
    (common, prop::collection::vec(channel, 1..4)).prop_map(
        |((zone, slots, max, gap, window, catch_up, similarity), channels)| {
            let mut out = format!(
                "[defaults]\ntimezone = \"{zone}\"\nslots = [{}]\nmax_per_day = {max}\nmin_gap = {gap}\nunique_window = {window}\ncatch_up = {catch_up}\nsimilarity = {similarity}\n",
                slots.join(", ")
            );
            for (name, platform, gap, slot) in channels {
                out.push_str(&format!("\n[channels.{name}]\nplatform = \"{platform}\"\n"));
                match platform {
                    "webhook" => out.push_str("url = \"http://127.0.0.1:9/hook\"\n"),
                    "mastodon" => out.push_str(
                        "instance = \"https://mastodon.example\"\ntoken = { env = \"T\" }\nmax_characters = 500\n",
                    ),
                    "x" => out.push_str("token = { env = \"T\" }\ndry_run = true\n"),
                    "bluesky" => out.push_str(
                        "handle = \"a.bsky.social\"\napp_password = { env = \"T\" }\ndry_run = true\n",
                    ),
                    "exec" => out.push_str("command = [\"/bin/true\"]\n"),
                    _ => {}
                }
                if let Some(gap) = gap {
                    out.push_str(&format!("min_gap = {gap}\n"));
                }
                if let Some(slot) = slot {
                    out.push_str(&format!("slots = [{slot}]\n"));
                }
            }
            out
        },
    )
}

// --- the properties -----------------------------------------------------------------------

/// Parses a post and resolves its times in hostile zones: nothing may panic.
fn exercise_post(bytes: &[u8]) {
    for format in [Format::Markdown, Format::Plain] {
        if let Ok(post) = post::parse_as(bytes, format) {
            for zone in ["Pacific/Kiritimati", "Etc/GMT+12", "America/New_York"] {
                let tz = TimeZone::get(zone).unwrap();
                for t in [post.front.at, post.front.expires].into_iter().flatten() {
                    let _ = t.resolve(&tz);
                }
            }
        }
    }
}

/// Parses a config and, when it is valid, reviews `posts` in each of its channels and
/// plans a week from `from`: every date and duration a config or a post can hold goes
/// through the policy's arithmetic.
fn exercise_config(text: &str, posts: &[Vec<u8>], from: Timestamp) {
    let Ok(loaded) = config::parse(Path::new("/fuzz/config/cadenced.toml"), text) else {
        return;
    };
    let config = loaded.config;
    let mut scan = Scan::default();
    for ch in &config.channels {
        for (i, bytes) in posts.iter().enumerate() {
            let Ok(post) = post::parse(bytes) else {
                continue;
            };
            let id = format!("{}/{i:03}.md", ch.name);
            scan.files.push(QueuedFile {
                path: PathBuf::from("/fuzz/queue").join(&id),
                id,
                channel: ch.name.clone(),
                modified: Timestamp::UNIX_EPOCH,
                hash: format!("{i:064}"),
                content: Ok(Accepted::new(post, Vec::new())),
            });
        }
    }
    let log = LogView::default();
    let source = review::LogSource::new(None, &config);
    let review = review::review(&config, scan, &source, from);
    let until = from + jiff::SignedDuration::from_hours(24 * 7);
    let _ = simulate::simulate(&review.sim_channels(&config, &log), from, until);
}

/// An instant anywhere in the years a plan may start (`plan --from` refuses others).
fn plan_start() -> impl Strategy<Value = Timestamp> {
    let first = "1900-01-01T00:00:00Z"
        .parse::<Timestamp>()
        .unwrap()
        .as_second();
    let last = "8999-12-24T00:00:00Z"
        .parse::<Timestamp>()
        .unwrap()
        .as_second();
    prop_oneof![
        (first..last).prop_map(|s| Timestamp::from_second(s).unwrap()),
        // Around DST changes and year ends people actually plan in.
        (0i64..(10 * 365 * 86_400)).prop_map(|s| {
            Timestamp::from_second(1_767_225_600 + s).unwrap() // from 2026-01-01
        }),
    ]
}

proptest! {
    #![proptest_config(config_cases(256))]

    #[test]
    fn the_post_parser_never_panics_on_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..512)
    ) {
        exercise_post(&bytes);
    }

    #[test]
    fn the_post_parser_never_panics_on_mutated_posts(bytes in mutated(post_corpus())) {
        exercise_post(&bytes);
    }

    #[test]
    fn the_post_parser_never_panics_on_hostile_front_matter(bytes in post_file()) {
        exercise_post(&bytes);
    }

    #[test]
    fn the_config_parser_never_panics_on_arbitrary_text(text in "(?s).{0,400}") {
        let _ = config::parse(Path::new("/fuzz/cadenced.toml"), &text);
    }

    #[test]
    fn the_config_parser_never_panics_on_mutated_configs(bytes in mutated(config_corpus())) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = config::parse(Path::new("/fuzz/cadenced.toml"), &text);
    }
}

proptest! {
    #![proptest_config(config_cases(96))]

    #[test]
    fn hostile_configs_and_posts_never_panic_the_review_or_the_plan(
        text in config_file(),
        posts in prop::collection::vec(post_file(), 0..4),
        from in plan_start(),
    ) {
        exercise_config(&text, &posts, from);
    }
}

/// The grammar reaches past the parsers: a fair share of its configs and posts are valid
/// (otherwise the properties above would only test error paths).
#[test]
fn the_grammars_produce_valid_configs_and_posts_too() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut configs, mut posts) = (0, 0);
    for _ in 0..300 {
        let text = config_file().new_tree(&mut runner).unwrap().current();
        configs += usize::from(config::parse(Path::new("/fuzz/cadenced.toml"), &text).is_ok());
        let bytes = post_file().new_tree(&mut runner).unwrap().current();
        posts += usize::from(post::parse(&bytes).is_ok());
    }
    assert!(configs >= 15, "only {configs} of 300 configs were valid");
    assert!(posts >= 30, "only {posts} of 300 posts were valid");
}
