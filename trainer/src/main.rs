//! `ot3d`: the ot3d command line — data inspection and previews, NOT training (export and
//! evaluation join here as they land).

mod args;

use anyhow::{Context, Result};
use args::{BackendArg, Cli, Command, DataCommand, PreviewArgs, TrainArgs, origin};
use clap::Parser;
use ot3d_models::mnist::Split;
use ot3d_models::nets::parameter_count;
use ot3d_trainer::device::{Backend, device};
use ot3d_trainer::digits::{ClassDigits, DigitOrigin};
use ot3d_trainer::mnist_dir::load_split;
use ot3d_trainer::preview::{PreviewRequest, write_preview};
use ot3d_trainer::training::run::{Finish, Start, read_config, train};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Data(DataCommand::Info { data_dir }) => data_info(&data_dir),
        Command::Data(DataCommand::Preview(args)) => data_preview(&args),
        Command::Train(args) => train_command(&args),
    };
    // User errors print as one readable chain ("error: what: why"), never as a backtrace.
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn data_info(dir: &std::path::Path) -> Result<()> {
    let splits = Split::ALL
        .into_iter()
        .map(|split| load_split(dir, split).map(|set| (split, set)))
        .collect::<Result<Vec<_>, _>>()?;
    println!(
        "MNIST in {} (length, MD5 and SHA-256 of all four files verified):",
        dir.display()
    );
    println!(
        "{:<6} {:>7}  {}",
        "split",
        "total",
        (0..10).map(|d| format!("{d:>6}")).collect::<String>()
    );
    for (split, set) in splits {
        let counts = set.class_counts();
        println!(
            "{:<6} {:>7}  {}",
            split.name(),
            set.len(),
            counts.iter().map(|c| format!("{c:>6}")).collect::<String>()
        );
    }
    Ok(())
}

fn data_preview(args: &PreviewArgs) -> Result<()> {
    let origin = origin(&args.voxel.data_source()?);
    let digits = ClassDigits::load(&origin, args.split(), args.digit)?;
    let request = PreviewRequest {
        count: args.count as usize,
        seed: args.seed,
        cell: args.cell as usize,
        columns: args.columns as usize,
    };
    let shown = write_preview(&digits, &request, &args.out)?;
    println!(
        "wrote {} ({} {} digits of class {} from the {} split, {} in the class)",
        args.out.display(),
        shown.len(),
        match &origin {
            DigitOrigin::Mnist { voxel, .. } => voxel.flavor.name(),
            DigitOrigin::KaggleH5 { .. } => "kaggle-h5",
        },
        digits.digit,
        digits.split.name(),
        digits.len()
    );
    Ok(())
}

fn backend(arg: BackendArg) -> Backend {
    match arg {
        BackendArg::Cpu => Backend::Cpu,
        BackendArg::Wgpu => Backend::Wgpu,
        BackendArg::Vulkan => Backend::Vulkan,
        BackendArg::Cuda => Backend::Cuda,
    }
}

fn train_command(args: &TrainArgs) -> Result<()> {
    let (run, start, config) = match &args.resume {
        Some(run) => {
            let mut config = read_config(run).context("cannot resume")?;
            if let Some(steps) = args.steps {
                config.steps = steps;
            }
            (run.clone(), Start::Resume, config)
        }
        None => {
            let start = match &args.init_from {
                Some(other) => Start::InitFrom(other.clone()),
                None => Start::New,
            };
            (args.run.clone(), start, args.config()?)
        }
    };
    let device = device(backend(args.backend)).map_err(anyhow::Error::msg)?;
    if args.dry_run {
        let t = config.nets.transport().init(&device);
        let f = config.nets.potential().init(&device);
        println!("{}", serde_json::to_string_pretty(&config)?);
        println!("T (transport UNet): {} parameters", parameter_count(&t));
        println!("f (potential ResNet): {} parameters", parameter_count(&f));
        println!(
            "run directory: {} ({start:?}); nothing trained (--dry-run)",
            run.display()
        );
        return Ok(());
    }

    let stop = Arc::new(AtomicBool::new(false));
    let handler_flag = stop.clone();
    ctrlc::set_handler(move || {
        if handler_flag.swap(true, Ordering::SeqCst) {
            eprintln!("\nsecond Ctrl-C: quitting without a final checkpoint");
            std::process::exit(130);
        }
        eprintln!("\nCtrl-C: finishing this step and writing a checkpoint (again to quit now)");
    })
    .context("cannot install the Ctrl-C handler")?;

    println!(
        "training {} → {} in {} on {} ({} outer steps)",
        config.source,
        config.target,
        run.display(),
        backend(args.backend).name(),
        config.steps
    );
    match train(&config, &run, start, &device, &stop, !args.quiet)? {
        Finish::Completed { step } => println!(
            "done: {step} steps; checkpoint and log.jsonl in {}",
            run.display()
        ),
        Finish::Interrupted { step } => println!(
            "stopped at step {step}; continue with `ot3d train --resume {}`",
            run.display()
        ),
    }
    Ok(())
}
