//! Writes cadenced's manual pages into a folder, for the package build:
//! `cargo run --example manpages -- target/assets/man`. With `--readme` instead, prints
//! README's reference tables (the text between its `reference` markers).
//! An example rather than a subcommand, so it is not part of the installed binary.

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: manpages DIR | manpages --readme");
        return ExitCode::from(2);
    };
    if dir == "--readme" {
        print!("{}", cadenced::cli::reference::markdown());
        return ExitCode::SUCCESS;
    }
    match cadenced::cli::manual::write_pages(std::path::Path::new(&dir)) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "error: could not write the manual pages into {}: {e}",
                dir.to_string_lossy()
            );
            ExitCode::FAILURE
        }
    }
}
