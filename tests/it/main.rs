//! Integration tests, one binary: the plan's properties across DST, and the real `cadenced`
//! binary end to end.

mod adapters;
mod auth;
mod binary;
mod bluesky;
mod cli;
mod commands;
mod contracts;
mod daemon;
mod demo;
mod fake_bluesky;
mod fake_mastodon;
mod fake_server;
mod fake_x;
mod fakes;
mod fault_proxy;
mod faults;
mod fuzz;
mod harness;
mod mastodon;
mod package;
mod pds;
mod plan_props;
mod plans;
mod publishing;
mod reliability;
mod startup;
mod status;
mod support;
mod systemd;
mod text;
mod watch;
mod x;
