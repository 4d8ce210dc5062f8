//! Manual pages and shell completions. `cadenced(1)` and one page per subcommand come from
//! the clap definitions (clap_mangen), so `--help` and `man` cannot disagree;
//! `cadenced.toml(5)` and `cadenced-posts(5)` are written from the reference tables in
//! [`super::reference`]. The package build writes the pages with
//! `cargo run --example manpages -- DIR` (an example, so the command stays out of the
//! binary and its completions); users get completions with `cadenced completions SHELL`.

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;
use roff::{Roff, bold, italic, roman};

use super::reference::{self, KeyDoc};
use crate::platforms::Platform;

/// The bundled example config, shown in `cadenced.toml(5)`.
const EXAMPLE_CONFIG: &str = include_str!("../../config/cadenced.toml");

const MANUAL: &str = "cadenced manual";

fn source() -> String {
    format!("cadenced {}", env!("CARGO_PKG_VERSION"))
}

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to write completions for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `cadenced completions SHELL`: the completion script on stdout.
pub fn completions(args: CompletionsArgs) -> ExitCode {
    let mut cmd = super::Cli::command();
    // clap_complete panics when a write fails: write it here, where a closed pipe is quiet.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "cadenced", &mut script);
    if let Err(e) = io::Write::write_all(&mut io::stdout().lock(), &script) {
        super::exit_on_write_error(&e);
    }
    ExitCode::SUCCESS
}

/// Writes all pages into `dir`; returns their paths.
pub fn write_pages(dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for (name, text) in pages()? {
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        written.push(path);
    }
    Ok(written)
}

/// Every page as (file name, roff text).
pub fn pages() -> io::Result<Vec<(String, String)>> {
    let mut cmd = super::Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut out = vec![("cadenced.1".to_string(), command_page(&cmd, true)?)];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("cadenced-{}", sub.get_name());
        let sub = sub.clone().display_name(name.clone());
        out.push((format!("{name}.1"), command_page(&sub, false)?));
    }
    out.push(("cadenced.toml.5".to_string(), config_page()));
    out.push(("cadenced-posts.5".to_string(), posts_page()));
    Ok(out)
}

/// A page from a clap command: clap_mangen's sections, then the command's notes and the
/// sections a daemon's page needs.
fn command_page(cmd: &clap::Command, root: bool) -> io::Result<String> {
    let man = clap_mangen::Man::new(cmd.clone())
        .manual(MANUAL)
        .source(source());
    let mut buf: Vec<u8> = Vec::new();
    man.render_title(&mut buf)?;
    man.render_name_section(&mut buf)?;
    man.render_synopsis_section(&mut buf)?;
    man.render_description_section(&mut buf)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut buf)?;
    }
    if root {
        man.render_subcommands_section(&mut buf)?;
    }
    let mut roff = Roff::new();
    if let Some(notes) = cmd.get_after_long_help().or(cmd.get_after_help()) {
        roff.control("SH", ["NOTES"]);
        preformatted(&mut roff, &notes.to_string());
    }
    if root {
        root_sections(&mut roff);
    }
    see_also(&mut roff, root);
    buf.extend_from_slice(roff.to_roff().as_bytes());
    String::from_utf8(buf).map_err(io::Error::other)
}

fn root_sections(roff: &mut Roff) {
    roff.control("SH", ["FILES"]);
    for (path, what) in [
        (
            "/etc/cadenced/cadenced.toml",
            "The config of the installed service (see cadenced.toml(5)).",
        ),
        (
            "/var/spool/cadenced/queue/<channel>/",
            "Where post files go (see cadenced-posts(5)); writable by the cadenced group.",
        ),
        (
            "/var/lib/cadenced/cadenced.sqlite",
            "The publish log; readable by the cadenced group, queried by log and status or any SQLite client (view publish_log).",
        ),
        (
            "/var/lib/cadenced/outbox/",
            "What outbox and dry-run channels wrote.",
        ),
    ] {
        roff.control("TP", []);
        roff.text([bold(path)]);
        roff.text([roman(what)]);
    }
    roff.control("SH", ["ENVIRONMENT"]);
    for (var, what) in [
        (
            "CADENCED_CONFIG",
            "The config file when --config is not given. Without either, ./config/cadenced.toml, then /etc/cadenced/cadenced.toml.",
        ),
        (
            "CREDENTIALS_DIRECTORY",
            "Set by systemd for LoadCredential=; `{ credential = \"name\" }` reads the file of that name in it.",
        ),
        (
            "RUST_LOG",
            "The daemon's log level (wins over log_level in the config).",
        ),
        ("NO_COLOR", "When set and not empty, no colours."),
        (
            "TZ",
            "The zone of headers and --since/--from dates when the channels do not share one zone (times of a channel are shown in its own zone).",
        ),
    ] {
        roff.control("TP", []);
        roff.text([bold(var)]);
        roff.text([roman(what)]);
    }
    roff.control("SH", ["EXIT STATUS"]);
    roff.text([roman(
        "0 all good (warnings alone included, unless --strict); 1 problems found: an invalid or held post file, a failed check; 2 a usage or config error.",
    )]);
}

fn see_also(roff: &mut Roff, root: bool) {
    roff.control("SH", ["SEE ALSO"]);
    let mut refs = Vec::new();
    if !root {
        refs.push(bold("cadenced"));
        refs.push(roman("(1), "));
    }
    refs.extend([
        bold("cadenced.toml"),
        roman("(5), "),
        bold("cadenced-posts"),
        roman("(5), "),
        bold("systemd.exec"),
        roman("(5)"),
    ]);
    roff.text(refs);
}

/// Text whose line structure matters (examples, config snippets): shown as written.
fn preformatted(roff: &mut Roff, text: &str) {
    roff.control("nf", []);
    for line in text.trim_end().lines() {
        roff.text([roman(line)]);
    }
    roff.control("fi", []);
}

fn title(roff: &mut Roff, name: &str, section: &str) {
    let source = source();
    roff.control("TH", [name, section, "", source.as_str(), MANUAL]);
}

fn para(roff: &mut Roff, text: &str) {
    roff.control("PP", []);
    roff.text([roman(text)]);
}

fn key_list(roff: &mut Roff, docs: &[KeyDoc], note: Option<&str>) {
    for d in docs {
        roff.control("TP", []);
        roff.text([
            bold(d.key.as_ref()),
            roman(" ("),
            italic(d.takes.as_ref()),
            roman(")"),
        ]);
        let mut text = d.about.to_string();
        if let Some(note) = note {
            text.push(' ');
            text.push_str(note);
        }
        roff.text([roman(text)]);
        roff.control("br", []);
        roff.text([roman(format!("Default: {}.", d.default))]);
        roff.control("br", []);
        roff.text([roman("Example:")]);
        preformatted_indented(roff, &d.example);
    }
}

fn preformatted_indented(roff: &mut Roff, text: &str) {
    roff.control("RS", []);
    preformatted(roff, text);
    roff.control("RE", []);
}

/// `cadenced.toml(5)`.
pub fn config_page() -> String {
    let mut r = Roff::new();
    title(&mut r, "CADENCED.TOML", "5");
    r.control("SH", ["NAME"]);
    r.text([roman("cadenced.toml - the configuration of cadenced")]);
    r.control("SH", ["SYNOPSIS"]);
    r.text([bold("/etc/cadenced/cadenced.toml")]);
    r.control("br", []);
    r.text([italic("DIR"), roman("/config/cadenced.toml")]);
    r.control("SH", ["DESCRIPTION"]);
    para(
        &mut r,
        "A strict TOML file: unknown keys, wrong types and impossible values are errors that name the line and the fix. cadenced reads the file given with --config, else $CADENCED_CONFIG, else ./config/cadenced.toml, else /etc/cadenced/cadenced.toml. Relative paths in it are relative to the file. `cadenced check` validates it with the queue; `systemctl reload cadenced` makes the daemon read it again (a broken new config is refused and the old one kept). `cadenced init DIR` writes a commented one with queue folders.",
    );
    para(
        &mut r,
        "Durations are written \"90s\", \"15m\", \"3h\", \"30d\" or combined (\"1h30m\"). Slots are \"HH:MM\" (every day), \"Mon-Fri HH:MM\" (days as Mon..Sun, ranges and lists), or 5-field (\"30 9 * * 1-5\") or 6-field cron with seconds (\"0 30 9 * * Mon-Fri\"), read in the channel's time zone.",
    );
    r.control("SH", ["TOP-LEVEL KEYS"]);
    key_list(&mut r, reference::TOP_LEVEL, None);
    r.control("SH", ["CHANNEL KEYS"]);
    para(
        &mut r,
        "Every [channels.<name>] table takes these. All but platform may also be set in [defaults], which every channel inherits unless it sets its own value.",
    );
    key_list(&mut r, reference::CHANNEL, None);
    r.control("SH", ["PLATFORMS"]);
    para(
        &mut r,
        "Each platform's own keys go in the channel's table (never in [defaults]: they name one account).",
    );
    for p in Platform::all() {
        r.control("SS", [p.name()]);
        r.text([roman(p.about())]);
        let keys = reference::platform_keys(p);
        if keys.is_empty() {
            r.control("br", []);
            r.text([roman("No keys of its own.")]);
        }
        key_list(&mut r, &keys, None);
    }
    r.control("SH", ["CREDENTIALS"]);
    para(
        &mut r,
        "A secret is never written in the config (a literal secret is an error that says where to move it). It is named by one of:",
    );
    for (form, what) in [
        (
            "{ env = \"NAME\" }",
            "the environment variable NAME of the daemon;",
        ),
        (
            "{ file = \"/etc/cadenced/x-token\" }",
            "the content of a file (relative to the config file unless absolute), read when the daemon starts or reloads; keep it readable by root and the daemon only;",
        ),
        (
            "{ credential = \"cadenced_name\" }",
            "a systemd credential, read from $CREDENTIALS_DIRECTORY: the installed unit passes every file in /etc/cadenced/credentials/ (root-only) as cadenced_<file name>; other files with a LoadCredential= line added by systemctl edit cadenced.",
        ),
    ] {
        r.control("TP", []);
        r.text([bold(form)]);
        r.text([roman(what)]);
    }
    para(
        &mut r,
        "A channel whose credential cannot be read is disabled (its posts wait) and the others keep running; `cadenced status` says why. `cadenced check` run from a shell that cannot read a credential only warns.",
    );
    exec_section(&mut r);
    r.control("SH", ["EXAMPLE"]);
    preformatted(&mut r, EXAMPLE_CONFIG);
    r.control("SH", ["SEE ALSO"]);
    r.text([
        bold("cadenced"),
        roman("(1), "),
        bold("cadenced-posts"),
        roman("(5), "),
        bold("cadenced-init"),
        roman("(1), "),
        bold("cadenced-check"),
        roman("(1)"),
    ]);
    r.to_roff()
}

/// How an `exec` program is called (also in README).
fn exec_section(r: &mut Roff) {
    r.control("SH", ["EXEC PROGRAMS"]);
    para(
        r,
        "An exec channel runs command[0] with the rest of the list as its arguments, directly (no shell), once per attempt. The program reads one JSON object on stdin: channel, platform, file (relative to the queue), text (the text that goes out), link, lang, media (a list of path, alt, bytes and local_path, an absolute path the program can open), fields (the post's [platform] table) and idempotency_key (the same for every resend of one attempt).",
    );
    for (code, what) in [
        (
            "exit 0",
            "published. stdout may carry {\"id\": \"...\", \"url\": \"...\"}, which the log records.",
        ),
        (
            "exit 75",
            "a temporary failure (EX_TEMPFAIL): tried again later with backoff, within the post's slot.",
        ),
        (
            "any other exit",
            "a permanent failure: the post moves to failed/ with a .error note quoting the program's last lines of stderr.",
        ),
        (
            "timeout",
            "the program and everything it started are stopped; whether it posted is unknown, so the post waits for `cadenced retry` or `cadenced resolve`.",
        ),
    ] {
        r.control("TP", []);
        r.text([bold(code)]);
        r.text([roman(what)]);
    }
    para(
        r,
        "The program inherits the daemon's environment without other channels' credentials, and runs inside the service's sandbox (read-only system, no home folders, private /tmp; see README).",
    );
}

/// `cadenced-posts(5)`.
pub fn posts_page() -> String {
    let mut r = Roff::new();
    title(&mut r, "CADENCED-POSTS", "5");
    r.control("SH", ["NAME"]);
    r.text([roman("cadenced-posts - the post files cadenced publishes")]);
    r.control("SH", ["SYNOPSIS"]);
    r.text([
        italic("queue"),
        roman("/"),
        italic("channel"),
        roman("/"),
        italic("name"),
        roman(".md (or .txt)"),
    ]);
    r.control("SH", ["DESCRIPTION"]);
    para(
        &mut r,
        "One file is one post for one channel. It may start with TOML front matter between two lines of +++, then the text. A file is taken once it is complete: at once when renamed into place, about a second after the last write when written in place.",
    );
    r.control("SH", ["EXAMPLE"]);
    preformatted(
        &mut r,
        "+++\nat = \"2026-11-27T09:00\"\nexpires = \"2026-11-28T00:00\"\nmedia = [{ path = \"../_media/sale.jpg\", alt = \"Red sneakers on a shelf\" }]\nlink = \"https://shop.example/black-friday\"\n+++\nBlack Friday: 30% off all sneakers\nuntil midnight.",
    );
    r.control("SH", ["FRONT MATTER"]);
    para(
        &mut r,
        "All keys are optional. An unknown key is an error with a \"did you mean\"; YAML front matter (---) is an error that says to use +++ TOML.",
    );
    key_list(&mut r, reference::POST, None);
    r.control("SS", ["media entries"]);
    key_list(&mut r, reference::MEDIA, None);
    r.control("SH", ["PLATFORM FIELDS"]);
    para(
        &mut r,
        "The [platform] table holds fields named as the platform's API names them; each platform checks its own. webhook, exec and outbox pass the table on untouched.",
    );
    for p in Platform::all() {
        let Some(fields) = p.fields().filter(|f| !f.is_empty()) else {
            continue;
        };
        r.control("TP", []);
        r.text([bold(p.name())]);
        r.text([roman(fields.join(", "))]);
    }
    r.control("SH", ["THE TEXT"]);
    para(
        &mut r,
        "A .txt post goes out exactly as written. A .md post is read the way a Markdown reader reads it: lines of one paragraph are soft-wrapped and join with one space (between two Chinese or Japanese characters with none), a blank line is a paragraph break, and a line ending in a backslash or in two spaces keeps its line break. List items (- or 1.), quotes (>) and headings (# and a space) keep their own lines. Nothing else is rendered: *stars*, [links](...) and #hashtags go out as typed. The length rules count the text that goes out.",
    );
    r.control("SH", ["WHICH FILES ARE READ"]);
    para(
        &mut r,
        "Files ending in .md or .txt directly inside a channel folder. Ignored: names starting with a dot or ending in ~, .tmp, .part, .swp, .held or .error; sub-folders of a channel folder, so queue/shop-x/drafts/ is a safe place for drafts (cadenced's own published/, failed/ and expired/ live there too); folders of the queue whose names start with _ or a dot, such as a shared queue/_media/.",
    );
    r.control("SH", ["WHAT HAPPENS TO A FILE"]);
    para(
        &mut r,
        "Published posts move to published/, failed ones to failed/ with a <name>.error note saying what to do, expired ones to expired/. A post that breaks a rule (a near-duplicate, over the platform's limit, a broken file) is held: it stays where it is, and a <name>.held note beside it says why and what to do; the note goes away once the file is fixed, published or removed. Editing a waiting file makes a new version that is checked again; renaming or deleting it withdraws it. No file is ever deleted.",
    );
    para(
        &mut r,
        "Among posts due at the same slot, higher priority goes first, then posts with at, then the file name in byte order (001-..., 002-...).",
    );
    r.control("SH", ["SEE ALSO"]);
    r.text([
        bold("cadenced"),
        roman("(1), "),
        bold("cadenced.toml"),
        roman("(5), "),
        bold("cadenced-check"),
        roman("(1)"),
    ]);
    r.to_roff()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn there_is_a_page_per_visible_subcommand_and_the_two_file_formats() {
        let names: Vec<String> = pages().unwrap().into_iter().map(|(n, _)| n).collect();
        for expected in [
            "cadenced.1",
            "cadenced-run.1",
            "cadenced-demo.1",
            "cadenced-check.1",
            "cadenced-plan.1",
            "cadenced-log.1",
            "cadenced-status.1",
            "cadenced-retry.1",
            "cadenced-resolve.1",
            "cadenced-completions.1",
            "cadenced-init.1",
            "cadenced.toml.5",
            "cadenced-posts.5",
        ] {
            assert!(names.iter().any(|n| n == expected), "{expected}: {names:?}");
        }
    }

    #[test]
    fn the_config_page_lists_every_key_with_its_default() {
        let page = config_page();
        let mut all: Vec<KeyDoc> = reference::TOP_LEVEL
            .iter()
            .chain(reference::CHANNEL)
            .cloned()
            .collect();
        for p in Platform::all() {
            all.extend(reference::platform_keys(p));
        }
        for d in all {
            assert!(page.contains(&format!("\\fB{}\\fR", d.key)), "{}", d.key);
        }
        assert!(page.contains("Default: 3h."));
        assert!(page.contains("[channels.shop\\-mastodon]"), "the example");
    }

    #[test]
    fn the_posts_page_lists_every_field() {
        let page = posts_page();
        for d in reference::POST.iter().chain(reference::MEDIA) {
            assert!(page.contains(&format!("\\fB{}\\fR", d.key)), "{}", d.key);
        }
        assert!(page.contains("drafts/"));
    }
}
