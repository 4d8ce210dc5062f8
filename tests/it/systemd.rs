//! The files in `systemd/`: the unit's sandbox score (`systemd-analyze security`), that
//! `systemd-analyze verify` accepts it, the settings the spec requires, and the sysusers and
//! tmpfiles files.
//!
//! The checks that need systemd's tools print a note and pass when the tool is missing,
//! except in CI (`CI` set), where a missing tool is a failure: install the Debian/Ubuntu
//! package `systemd` (systemd 250 or newer, for `security --offline=`).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::repo;

/// The spec's ceiling for `systemd-analyze security` (0.0 best, 10.0 worst).
const MAX_EXPOSURE: f64 = 2.0;

fn unit_file() -> PathBuf {
    repo().join("systemd/cadenced.service")
}

/// Whether `tool` can be run. If not: a note on stderr and `false`, or a panic in CI.
fn have(tool: &str) -> bool {
    match Command::new(tool).arg("--version").output() {
        Ok(out) if out.status.success() => true,
        other => {
            let why = match other {
                Ok(out) => format!("`{tool} --version` failed ({})", out.status),
                Err(e) => format!("`{tool}` cannot be run ({e})"),
            };
            let note = format!(
                "{why}: the systemd unit checks need it; install the Debian package `systemd`"
            );
            if std::env::var_os("CI").is_some() {
                panic!("{note} (CI is set, so this is a failure)");
            }
            eprintln!("note: {note}. Skipping this check.");
            false
        }
    }
}

/// Runs `cmd` with output the tests can parse (no colours, no pager, C locale).
fn run(cmd: &mut Command) -> Output {
    cmd.env("SYSTEMD_COLORS", "0")
        .env("SYSTEMD_PAGER", "cat")
        .env("LC_ALL", "C")
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The number in "→ Overall exposure level for cadenced.service: 1.1 OK 🙂".
fn overall_exposure(report: &str) -> Option<f64> {
    let line = report
        .lines()
        .find(|l| l.contains("Overall exposure level"))?;
    let (_, rest) = line.rsplit_once(": ")?;
    rest.split_whitespace().next()?.parse().ok()
}

#[test]
fn exposure_parser_reads_the_summary_line() {
    let report = "✗ UMask=   Files created by service are group-writable by default   0.1\n\
                  \n→ Overall exposure level for cadenced.service: 1.1 OK 🙂\n";
    assert_eq!(overall_exposure(report), Some(1.1));
    assert_eq!(overall_exposure("no summary here"), None);
}

#[test]
fn unit_sandbox_exposure_is_at_most_2() {
    if !have("systemd-analyze") {
        return;
    }
    let unit = unit_file();
    let out = run(Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit));
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze security --offline=true {} failed ({}); it needs systemd 250 or \
         newer.\nstdout:\n{stdout}\nstderr:\n{stderr}",
        unit.display(),
        out.status
    );
    let exposure = overall_exposure(&stdout).unwrap_or_else(|| {
        panic!("no \"Overall exposure level\" in the report:\n{stdout}\nstderr:\n{stderr}")
    });
    eprintln!("systemd-analyze security: overall exposure {exposure}");
    assert!(
        exposure <= MAX_EXPOSURE,
        "exposure {exposure} is over {MAX_EXPOSURE}; the report:\n{stdout}"
    );
}

/// The programs named by `Exec*=` lines, without the `-@:+!` prefixes.
fn exec_programs(unit: &str) -> Vec<String> {
    unit.lines()
        .map(str::trim)
        .filter(|l| l.starts_with("Exec"))
        .filter_map(|l| l.split_once('='))
        .filter_map(|(_, cmdline)| cmdline.split_whitespace().next())
        .map(|p| p.trim_start_matches(['-', '@', ':', '+', '!']).to_string())
        .filter(|p| p.starts_with('/'))
        .collect()
}

/// `systemd-analyze verify` checks that the programs exist, and /usr/bin/cadenced is not
/// installed here. So it runs with `--root=` on a throw-away tree: the host's unit folder
/// (for the targets the unit names), our unit, and stub programs where the unit runs any.
#[test]
fn unit_passes_systemd_analyze_verify() {
    if !have("systemd-analyze") {
        return;
    }
    let Some(units) = ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .into_iter()
        .map(Path::new)
        .find(|d| d.join("sysinit.target").exists())
    else {
        let note = "no systemd unit folder with sysinit.target on this machine";
        assert!(std::env::var_os("CI").is_none(), "{note}");
        eprintln!("note: {note}. Skipping `systemd-analyze verify`.");
        return;
    };

    let root = tempfile::tempdir().expect("temp dir");
    let r = root.path();
    let lib = r.join("usr/lib/systemd");
    fs::create_dir_all(&lib).unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(units)
        .arg(lib.join("system"))
        .status();
    assert!(
        status.is_ok_and(|s| s.success()),
        "copying {} failed",
        units.display()
    );
    let etc = r.join("etc/systemd/system");
    fs::create_dir_all(&etc).unwrap();
    let unit = fs::read_to_string(unit_file()).unwrap();
    fs::write(etc.join("cadenced.service"), &unit).unwrap();
    for program in exec_programs(&unit) {
        let stub = r.join(program.trim_start_matches('/'));
        fs::create_dir_all(stub.parent().unwrap()).unwrap();
        fs::write(&stub, "#!/bin/sh\nexit 0\n").unwrap();
        fs::set_permissions(&stub, fs::Permissions::from_mode(0o755)).unwrap();
    }

    let out = run(Command::new("systemd-analyze")
        .args(["verify", "--man=false"])
        .arg(format!("--root={}", r.display()))
        .arg("cadenced.service"));
    let stderr = text(&out.stderr);
    // verify exits 0 on mere warnings (an unknown key is "ignoring"), so any complaint
    // about our unit counts as a failure.
    let complaints: Vec<&str> = stderr.lines().filter(|l| l.contains("cadenced")).collect();
    assert!(
        out.status.success() && complaints.is_empty(),
        "systemd-analyze verify rejected systemd/cadenced.service ({}):\n{stderr}{}",
        out.status,
        text(&out.stdout)
    );
}

/// The active `Key=value` settings of a unit file, comments dropped.
fn settings(unit: &str) -> Vec<(String, String)> {
    unit.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(['#', ';', '[']))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[test]
fn unit_has_the_settings_the_spec_requires() {
    let unit = fs::read_to_string(unit_file()).expect("systemd/cadenced.service");
    let settings = settings(&unit);
    let has = |key: &str, value: &str| settings.iter().any(|(k, v)| k == key && v == value);
    for (key, value) in [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        (
            "ExecStart",
            "/usr/bin/cadenced run --config /etc/cadenced/cadenced.toml",
        ),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("Restart", "on-failure"),
        ("User", "cadenced"),
        ("Group", "cadenced"),
        ("UMask", "0007"),
        ("StateDirectory", "cadenced"),
        ("StateDirectoryMode", "0750"),
        ("ReadWritePaths", "/var/spool/cadenced"),
        ("MemoryDenyWriteExecute", "yes"),
        ("NoNewPrivileges", "yes"),
    ] {
        assert!(
            has(key, value),
            "systemd/cadenced.service lacks `{key}={value}`"
        );
    }
    assert!(
        settings
            .iter()
            .any(|(k, v)| k == "WatchdogSec" && !v.is_empty() && v != "0"),
        "systemd/cadenced.service needs a WatchdogSec= (the daemon sends WATCHDOG=1)"
    );
    assert!(
        settings
            .iter()
            .any(|(k, v)| k == "LoadCredential" && v.contains(':')),
        "systemd/cadenced.service needs an active `LoadCredential=name:/path` example"
    );
    assert!(
        !settings
            .iter()
            .any(|(k, v)| k == "DynamicUser" && v != "no"),
        "the user must be static (staff in the cadenced group write the queue)"
    );
}

#[test]
fn sysusers_and_tmpfiles_declare_the_user_and_folders() {
    let sysusers = fs::read_to_string(repo().join("systemd/cadenced.sysusers")).unwrap();
    let entries: Vec<Vec<&str>> = sysusers
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(
        entries
            .iter()
            .any(|e| e.len() >= 2 && e[0] == "u" && e[1] == "cadenced"),
        "cadenced.sysusers must create the user (and group) cadenced: {sysusers}"
    );

    let tmpfiles = fs::read_to_string(repo().join("systemd/cadenced.tmpfiles")).unwrap();
    let line_for = |path: &str| -> Vec<String> {
        tmpfiles
            .lines()
            .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .find(|f| f.len() >= 5 && f[0] == "d" && f[1] == path)
            .unwrap_or_else(|| panic!("cadenced.tmpfiles has no `d {path} ...` line"))
    };
    for (path, mode) in [
        ("/var/spool/cadenced", "2770"),
        ("/var/spool/cadenced/queue", "2770"),
        ("/var/lib/cadenced", "0750"),
    ] {
        let f = line_for(path);
        assert_eq!(
            (f[2].as_str(), f[3].as_str(), f[4].as_str()),
            (mode, "cadenced", "cadenced"),
            "{path}"
        );
    }
}

/// Applies both files to a throw-away root with the real tools and checks the result. Needs
/// root (tmpfiles changes owners), so it is skipped otherwise.
#[test]
fn sysusers_and_tmpfiles_apply_cleanly() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("note: not root, so systemd-sysusers/systemd-tmpfiles --root are not tried");
        return;
    }
    if !have("systemd-sysusers") || !have("systemd-tmpfiles") {
        return;
    }
    let root = tempfile::tempdir().expect("temp dir");
    let r = root.path();
    fs::create_dir_all(r.join("etc")).unwrap();
    for f in ["passwd", "group", "shadow", "gshadow"] {
        fs::write(r.join("etc").join(f), "").unwrap();
    }
    let root_arg = format!("--root={}", r.display());
    let out = run(Command::new("systemd-sysusers")
        .arg(&root_arg)
        .arg(repo().join("systemd/cadenced.sysusers")));
    assert!(
        out.status.success(),
        "systemd-sysusers: {}",
        text(&out.stderr)
    );
    let passwd = fs::read_to_string(r.join("etc/passwd")).unwrap();
    let user = passwd
        .lines()
        .find(|l| l.starts_with("cadenced:"))
        .unwrap_or_else(|| panic!("no cadenced user in {passwd}"));
    let fields: Vec<&str> = user.split(':').collect();
    let (uid, gid): (u32, u32) = (fields[2].parse().unwrap(), fields[3].parse().unwrap());
    assert_eq!(fields[5], "/var/lib/cadenced");

    let out = run(Command::new("systemd-tmpfiles")
        .arg(&root_arg)
        .arg("--create")
        .arg(repo().join("systemd/cadenced.tmpfiles")));
    assert!(
        out.status.success(),
        "systemd-tmpfiles: {}",
        text(&out.stderr)
    );
    use std::os::unix::fs::MetadataExt;
    for (path, mode) in [
        ("var/spool/cadenced", 0o2770),
        ("var/spool/cadenced/queue", 0o2770),
        ("var/lib/cadenced", 0o750),
    ] {
        let meta = fs::metadata(r.join(path)).unwrap();
        assert_eq!(meta.mode() & 0o7777, mode, "/{path} mode");
        assert_eq!((meta.uid(), meta.gid()), (uid, gid), "/{path} owner");
    }
}
