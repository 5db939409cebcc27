//! Running commands with an announcement of what is being done and why.

use anyhow::{Context, Result, bail};
use std::process::Command;

/// Prints a step header, so a newcomer sees what the automation is doing.
pub fn step(message: &str) {
    println!("\n==> {message}");
}

/// Runs `command`, echoing it; fails with the command line if it fails.
pub fn run(command: &mut Command) -> Result<()> {
    let line = format!("{command:?}").replace('"', "");
    println!("    $ {line}");
    let status = command
        .status()
        .with_context(|| format!("cannot start `{line}`: is the program installed?"))?;
    if !status.success() {
        bail!("`{line}` failed ({status})");
    }
    Ok(())
}

/// Runs `command` quietly and returns its stdout if it succeeded.
pub fn output(command: &mut Command) -> Option<String> {
    let out = command.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `cargo`, as the one running this xtask.
pub fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}
