//! What the Debian package ships besides the binary: the config installed as
//! /etc/cadenced/cadenced.toml. The package itself is built and checked (contents,
//! conffile, maintainer scripts, lintian, an install) by `packaging/check-deb` in `.ci/run`.

use std::path::Path;

use crate::support::repo;

fn packaged_config() -> String {
    std::fs::read_to_string(repo().join("packaging/cadenced.toml")).unwrap()
}

#[test]
fn the_packaged_config_loads_clean_with_the_installed_layout() {
    let path = Path::new("/etc/cadenced/cadenced.toml");
    let loaded =
        cadenced::config::parse(path, &packaged_config()).unwrap_or_else(|d| panic!("{d:?}"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = &loaded.config;
    assert_eq!(c.queue, Path::new("/var/spool/cadenced/queue"));
    assert_eq!(c.database, Path::new("/var/lib/cadenced/cadenced.sqlite"));
    assert_eq!(c.outbox, Path::new("/var/lib/cadenced/outbox"));
    // It runs as installed: one channel that needs no account.
    let names: Vec<&str> = c.channels.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["try-it"]);
}

#[test]
fn the_packaged_configs_commented_channels_are_valid_when_uncommented() {
    // Lines like `#[channels.shop-x]` and `#platform = "x"` are examples to uncomment.
    let text: String = packaged_config()
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest) if rest.starts_with(|c: char| c == '[' || c.is_ascii_lowercase()) => rest,
            _ => l,
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let loaded = cadenced::config::parse(Path::new("/etc/cadenced/cadenced.toml"), &text)
        .unwrap_or_else(|d| panic!("{d:?}\n{text}"));
    assert_eq!(loaded.config.channels.len(), 5, "{text}");
}
