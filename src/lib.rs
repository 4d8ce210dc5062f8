//! cadenced: keeps a small business's social accounts on a steady, human cadence.
//!
//! Data flows queue → cadence → platforms → store. This file is the table of contents.

pub mod cadence; // pure policy: slots, local days, similarity, caps and gaps, the plan simulation
pub mod cli; // one file per subcommand; human and JSON rendering
pub mod clock; // the only place that reads the wall clock
pub mod config; // strict TOML config: lookup, load, validate, credentials
pub mod daemon; // the only module that wires the others: watch, schedule, publish, log
pub mod diag; // compiler-style diagnostics naming the file, the line and the fix
pub mod markdown; // the text a `.md` post sends: soft-wrapped lines joined, paragraphs kept
pub mod parallel; // work on every core, its answers taken in order (a large start-up)
pub mod platforms; // one folder per platform: keys, rules, request plan, answers; the registry; the executors
pub mod post; // the post file format: pure parsing from bytes
pub mod progress; // long work saying it advances (the keep-alive to systemd)
pub mod queue; // scanning the queue folder: ignore rules, safe reads, media confinement
pub mod review; // each queued file's verdict (ready, invalid, held, expired): shared by check, plan, daemon
pub mod secret; // credentials by reference (env, file, systemd credential), read safely, never shown
pub mod store; // the SQLite log: schema, migrations, queries
pub mod tokens; // the owner-only token store: sessions and OAuth tokens cadenced gets itself
