//! Integration tests, one binary: the plan's properties across DST, and the real `cadenced`
//! binary end to end.

mod adapters;
mod binary;
mod cli;
mod commands;
mod contracts;
mod daemon;
mod demo;
mod fake_mastodon;
mod faults;
mod mastodon;
mod plan_props;
mod plans;
mod support;
mod systemd;
mod text;
mod watch;
