//! Integration tests, one binary: the plan's properties across DST, and the real `cadenced`
//! binary end to end.

mod cli;
mod plan_props;
mod support;
mod systemd;
