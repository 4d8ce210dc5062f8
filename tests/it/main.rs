//! Integration tests, one binary: the plan's properties across DST, the real `cadenced`
//! binary end to end, the queue watcher on real inotify, and the systemd unit.

mod cli;
mod commands;
mod plan_props;
mod support;
mod systemd;
mod watch;
