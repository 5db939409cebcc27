//! `ot3d`: the ot3d command line — data inspection and previews, NOT training, export,
//! mapping, the evaluation classifier and evaluation.

mod args;

use anyhow::{Context, Result, anyhow};
use args::{
    BackendArg, BenchCommand, BenchConvArgs, BenchGaussianArgs, BenchSgemmArgs, BenchStepsArgs,
    ClassifierCommand, ClassifierFlavorArg, ClassifierTrainArgs, Cli, Command, ConvArg,
    DataCommand, EvalArgs, ExportArgs, ExportDigitsArgs, FigureCommand, FigureCompareArgs,
    FigureLossesArgs, FigureMapArgs, MapArgs, PrecisionArg, PreviewArgs, ReportArgs, TrainArgs,
};
use clap::Parser;
use ot3d_models::digit_pack::DigitPack;
use ot3d_models::mnist::Split;
use ot3d_models::nets::burnpack::Precision;
use ot3d_models::nets::parameter_count;
use ot3d_trainer::device::{Backend, device, indexed_devices};
use ot3d_trainer::digits::{ClassDigits, DigitOrigin};
use ot3d_trainer::eval::classifier_train::{
    ClassifierTrainConfig, FlavorName, save_classifier, train_classifier,
};
use ot3d_trainer::eval::evaluate::{EvalRequest, evaluate, record_in_manifest, table};
use ot3d_trainer::eval::figures::{
    LabeledMap, MapFigure, RestartTrace, compare_figure, loss_figure, map_figure, restarts_curve,
};
use ot3d_trainer::export::{MapChoice, PrecisionChoice, export_map};
use ot3d_trainer::mapping::{MapRequest, load_model_dir, map_digits, npy_shape};
use ot3d_trainer::mnist_dir::load_split;
use ot3d_trainer::preview::{PreviewRequest, write_preview};
use ot3d_trainer::training::log::read_log;
use ot3d_trainer::training::restarts::{RestartsRecord, map_run_and_restarts, read_restarts};
use ot3d_trainer::training::run::{Finish, Start, read_config, train_on};
use ot3d_trainer::training::selection::read_record as read_selection;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

fn main() -> ExitCode {
    ot3d_trainer::allocator::tune_for_training();
    let result = match Cli::parse().command {
        Command::Data(DataCommand::Info { data_dir }) => data_info(&data_dir),
        Command::Data(DataCommand::Preview(args)) => data_preview(&args),
        Command::Train(args) => train_command(&args),
        Command::Export(args) => export_command(&args),
        Command::Map(args) => map_command(&args),
        Command::ExportDigits(args) => export_digits(&args),
        Command::Classifier(ClassifierCommand::Train(args)) => classifier_train(&args),
        Command::Eval(args) => eval_command(&args),
        Command::Report(args) => report_command(&args),
        Command::Figure(FigureCommand::Map(args)) => figure_map(&args),
        Command::Figure(FigureCommand::Losses(args)) => figure_losses(&args),
        Command::Figure(FigureCommand::Compare(args)) => figure_compare(&args),
        Command::Bench(BenchCommand::Steps(args)) => bench_steps(&args),
        Command::Bench(BenchCommand::Sgemm(args)) => bench_sgemm(&args),
        Command::Bench(BenchCommand::Conv(args)) => bench_conv(&args),
        Command::Bench(BenchCommand::Gaussian(args)) => bench_gaussian(&args),
    };
    // User errors print as one readable chain ("error: what: why"), never as a backtrace.
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each once: a cause whose text its parent already shows (an
/// error variant that embeds its source's message) is not repeated.
fn error_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out += ": ";
        }
        out += &text;
    }
    out
}

fn export_digits(args: &ExportDigitsArgs) -> Result<()> {
    let split = args.split.split();
    let images = load_split(&args.data_dir, split)?;
    let pack = DigitPack::select(&images, split, args.digit, args.count as usize)?;
    let bytes = pack.encode();
    ot3d_trainer::atomic_file::write_atomic(&args.out, &bytes)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!(
        "wrote {} {} digits of class {} ({} bytes) to {}",
        pack.len(),
        split.name(),
        args.digit,
        bytes.len(),
        args.out.display()
    );
    Ok(())
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
    let origin = args.voxel.data_source()?.origin();
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
    let devices = if args.devices.is_empty() {
        vec![device(backend(args.backend)).map_err(anyhow::Error::msg)?]
    } else {
        indexed_devices(backend(args.backend), &args.devices).map_err(anyhow::Error::msg)?
    };
    let device = devices[0].clone();
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

    let on = match devices.len() {
        1 => backend(args.backend).name().to_string(),
        n => format!(
            "{n} {} devices (data-parallel, batch {} per device)",
            backend(args.backend).name(),
            config.batch_size / n.max(1)
        ),
    };
    println!(
        "training {} → {} in {} on {on} ({} outer steps)",
        config.source,
        config.target,
        run.display(),
        config.steps
    );
    let finish = train_on(&config, &run, start, &devices, &stop, !args.quiet)?;
    if let Some(record) = read_restarts(&run)? {
        println!("restarts: {}", restarts_summary(&record));
    }
    match finish {
        Finish::Completed { step } if config.restarts > 1 => println!(
            "done: {} restarts of {step} steps; the map is the chosen restart's (ot3d export {})",
            config.restarts,
            run.display()
        ),
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

fn export_command(args: &ExportArgs) -> Result<()> {
    let choice = match args.precision {
        PrecisionArg::Auto => PrecisionChoice::Auto,
        PrecisionArg::F16 => PrecisionChoice::Exactly(Precision::F16),
        PrecisionArg::F32 => PrecisionChoice::Exactly(Precision::F32),
    };
    let device = device(Backend::Cpu).map_err(anyhow::Error::msg)?;
    let which = match (args.latest, args.step) {
        (true, _) => MapChoice::Latest,
        (false, Some(step)) => MapChoice::Step(step),
        (false, None) => MapChoice::Run,
    };
    let report = export_map(&args.run, &args.out, choice, which, &device)?;
    let m = &report.manifest;
    if let Some(restarts) = &report.restarts
        && let Some(chosen) = restarts.chosen()
    {
        println!(
            "restarts: {}; the map is seed {}'s ({})",
            restarts_summary(restarts),
            chosen.seed,
            args.run.join(&chosen.dir).display()
        );
    }
    if let Some(record) = &report.selection
        && let Some(best) = &record.best
    {
        println!(
            "model selection chose NOT step {} of {} validated: FID-3D {:.2} on {} held-out training digits ({} with --latest)",
            best.step,
            record.history.len(),
            best.fid,
            record.held_out,
            record.history.last().map_or(0, |p| p.step)
        );
    }
    println!(
        "exported T ({} → {}, {}) to {}: {} bytes, {:?}",
        m.source_digit,
        m.target_digit,
        ot3d_trainer::eval::evaluate::training_summary(m.training_steps, m.warm_start_steps),
        report.dir.display(),
        m.weights_bytes,
        m.precision
    );
    println!(
        "f16 storage changes T(x) by at most {:.2e} on 64 held-out digits (tolerance 1e-3)",
        report.f16_max_abs_diff
    );
    Ok(())
}

/// Each restart's seed and best validation FID-3D, e.g. "seed 0: 21.55 at step 400".
fn restarts_summary(record: &RestartsRecord) -> String {
    record
        .restarts
        .iter()
        .map(|r| {
            let state = match (&r.best, &r.failed, r.finished) {
                (_, Some(_), _) => "diverged".to_string(),
                (Some(best), _, finished) => format!(
                    "validation FID-3D {:.2} at step {}{}",
                    best.fid,
                    best.step,
                    if finished { "" } else { ", unfinished" }
                ),
                (None, _, _) => "not validated yet".to_string(),
            };
            format!("seed {} {state}", r.seed)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn map_command(args: &MapArgs) -> Result<()> {
    let device = device(backend(args.backend)).map_err(anyhow::Error::msg)?;
    let (t, manifest) = load_model_dir(&args.weights, &device)?;
    let request = MapRequest {
        mnist_dir: args.data_dir.clone(),
        split: args.digits.split(),
        count: args.count as usize,
        coloring: args.color.map(|c| c.coloring()),
        seed: args.seed,
    };
    let (n, values) = map_digits(&t, &manifest, &request, &device)?;
    ot3d_trainer::npy::write_f32(&args.out, &npy_shape(n), &values)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!(
        "wrote {}: {n} digits {} → {}, float32 [{n}, 2, 3, 16, 16, 16] (axis 1: input, output)",
        args.out.display(),
        manifest.source_digit,
        manifest.target_digit
    );
    Ok(())
}

fn classifier_train(args: &ClassifierTrainArgs) -> Result<()> {
    let mut config = ClassifierTrainConfig::new(args.data_dir.clone());
    config.flavors = args
        .flavors
        .iter()
        .map(|f| match f {
            ClassifierFlavorArg::Plain => FlavorName::Plain,
            ClassifierFlavorArg::Rotated => FlavorName::Rotated,
            ClassifierFlavorArg::KaggleStyle => FlavorName::KaggleStyle,
        })
        .collect();
    config.flavors.dedup();
    (config.steps, config.batch_size, config.lr) = (args.steps, args.batch_size, args.lr);
    (config.width, config.features) = (args.width, args.features);
    (config.test_per_class, config.seed) = (args.test_per_class, args.seed);
    if args.dry_run {
        config
            .validate()
            .map_err(|e| anyhow!("invalid classifier settings: {e}"))?;
        println!("{}", serde_json::to_string_pretty(&config)?);
        return Ok(());
    }
    let device = device(Backend::Cpu).map_err(anyhow::Error::msg)?;
    println!(
        "training the digit classifier ({} steps, batch {}, flavors {})",
        config.steps,
        config.batch_size,
        config
            .flavors
            .iter()
            .map(|f| f.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let started = std::time::Instant::now();
    let (classifier, accuracy) = train_classifier(&config, &device, !args.quiet)?;
    let manifest = save_classifier(&classifier, &config, accuracy, &args.out)?;
    println!(
        "wrote {} in {:.0} s; test accuracy ({} digits per class):",
        args.out.display(),
        started.elapsed().as_secs_f64(),
        config.test_per_class
    );
    for (flavor, accuracy) in &manifest.test_accuracy {
        println!("  {flavor:<13} {:.2}%", 100.0 * accuracy);
    }
    Ok(())
}

fn eval_command(args: &EvalArgs) -> Result<()> {
    let device = device(Backend::Cpu).map_err(anyhow::Error::msg)?;
    let request = EvalRequest {
        weights: args.weights.clone(),
        classifier: args.classifier.clone(),
        mnist_dir: args.data_dir.clone(),
        count: args.count,
        seed: args.seed,
        progress: !args.quiet,
    };
    let report = evaluate(&request, &device)?;
    print!("{}", table(&report));
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report)?;
        ot3d_trainer::atomic_file::write_atomic(path, json.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if args.record {
        record_in_manifest(&args.weights, &report)?;
        println!(
            "recorded the headline numbers in {}/manifest.json",
            args.weights.display()
        );
    }
    Ok(())
}

fn write_png(path: &std::path::Path, image: &ot3d_models::render::RgbImage) -> Result<()> {
    ot3d_trainer::atomic_file::write_atomic(path, &image.to_png())
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!(
        "wrote {} ({}×{} pixels)",
        path.display(),
        image.width,
        image.height
    );
    Ok(())
}

fn figure_map(args: &FigureMapArgs) -> Result<()> {
    let device = device(Backend::Cpu).map_err(anyhow::Error::msg)?;
    let (t, manifest) = load_model_dir(&args.weights, &device)?;
    let figure = MapFigure {
        mnist_dir: args.data_dir.clone(),
        per_color: args.per_color as usize,
        seed: args.seed,
        cell: args.cell as usize,
        partners: args.partners,
    };
    write_png(&args.out, &map_figure(&t, &manifest, &figure, &device)?)
}

fn figure_compare(args: &FigureCompareArgs) -> Result<()> {
    if !args.label.is_empty() && args.label.len() != args.weights.len() {
        anyhow::bail!(
            "{} --label for {} --weights: give one label per map, or none for the defaults",
            args.label.len(),
            args.weights.len()
        );
    }
    let device = device(Backend::Cpu).map_err(anyhow::Error::msg)?;
    let maps = args
        .weights
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            let (t, manifest) = load_model_dir(dir, &device)?;
            let label = args.label.get(i).cloned().unwrap_or_else(|| {
                if let Some(gamma) = manifest.weak_gamma {
                    format!("γ={gamma}")
                } else if manifest.target_weight != 1.0 {
                    format!("w={}", manifest.target_weight)
                } else {
                    dir.file_name()
                        .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into())
                }
            });
            Ok(LabeledMap { label, t, manifest })
        })
        .collect::<Result<Vec<_>>>()?;
    let figure = MapFigure {
        mnist_dir: args.data_dir.clone(),
        per_color: args.per_color as usize,
        seed: args.seed,
        cell: args.cell as usize,
        partners: false,
    };
    write_png(
        &args.out,
        &compare_figure(&maps, &figure, &args.title, args.draws as usize, &device)?,
    )
}

fn figure_losses(args: &FigureLossesArgs) -> Result<()> {
    // A run of restarts: the chosen restart's curves, and the whole run's time to quality.
    let (run, record) = map_run_and_restarts(&args.run)?;
    let run = &run;
    let mut restarts = None;
    if let Some(record) = record {
        println!("the chosen restart: {}", run.display());
        let mut traces = Vec::new();
        for r in &record.restarts {
            let dir = args.run.join(&r.dir);
            let (log, warm) = run_records(&dir)?;
            if let Some(selection) = read_selection(&dir)? {
                traces.push(RestartTrace {
                    seed: r.seed,
                    log,
                    warm,
                    selection,
                });
            }
        }
        restarts = Some(restarts_curve(&traces));
    }
    let (log, warm) = run_records(run)?;
    let selection = read_selection(run)?;
    write_png(
        &args.out,
        &loss_figure(&log, warm.as_ref(), selection.as_ref(), restarts.as_ref()),
    )
}

/// A run's NOT-step log and warm-start report (when it had one); refused when it has
/// neither yet.
fn run_records(
    run: &std::path::Path,
) -> Result<(
    Vec<ot3d_trainer::training::log::StepRecord>,
    Option<ot3d_trainer::training::warm_start::WarmStartReport>,
)> {
    let log = read_log(run).with_context(|| {
        format!(
            "cannot read {}/log.jsonl: pass a training run directory (ot3d train --run DIR)",
            run.display()
        )
    })?;
    let warm = ot3d_trainer::training::warm_start::read_report(run).context(
        "delete the warm-start report to plot only the NOT steps, or train the run again",
    )?;
    if log.is_empty() && warm.is_none() {
        anyhow::bail!("{}/log.jsonl has no steps yet: train first", run.display());
    }
    Ok((log, warm))
}

/// A JSON file read back; `make` is the command that writes it (the path is appended) and
/// `not_it` what to say when the file holds something else.
fn read_record<T: serde::de::DeserializeOwned>(
    path: &std::path::Path,
    make: &str,
    not_it: &str,
) -> Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read {}: write it with `{make} {}`",
            path.display(),
            path.display()
        )
    })?;
    serde_json::from_str(&text).with_context(|| format!("{} is not {not_it}", path.display()))
}

/// An `ot3d eval --json` report read back.
fn read_eval(path: &std::path::Path) -> Result<ot3d_trainer::eval::evaluate::EvalReport> {
    read_record(
        path,
        "ot3d eval --weights DIR --json",
        "an `ot3d eval --json` report; write it again with ot3d eval",
    )
}

fn report_command(args: &ReportArgs) -> Result<()> {
    let spec = args.spec()?;
    let report = read_eval(&spec.eval)?;
    let others = spec
        .compare
        .iter()
        .map(|path| read_eval(path))
        .collect::<Result<Vec<_>>>()?;
    let device = device(Backend::Cpu).map_err(anyhow::Error::msg)?;
    let (_, classifier) =
        ot3d_trainer::eval::classifier_train::load_classifier(&spec.classifier, &device)?;
    let mut markdown =
        ot3d_trainer::eval::report::results_markdown(&report, &classifier, &spec.figures);
    if let Some(path) = &spec.gaussian {
        let entries: Vec<ot3d_trainer::gaussian::report::GaussianEntry> = read_record(
            path,
            "ot3d bench gaussian --json",
            "an `ot3d bench gaussian --json` record; write it again",
        )?;
        markdown.push('\n');
        markdown.push_str(&ot3d_trainer::gaussian::report::markdown(
            &entries,
            spec.gaussian_figure.as_deref(),
        ));
    }
    if !others.is_empty() {
        markdown.push('\n');
        markdown.push_str(&ot3d_trainer::eval::report::comparison_markdown(
            &others,
            &spec.compare_figures,
        ));
    }
    type Section = fn(&[ot3d_trainer::eval::evaluate::EvalReport], &[String]) -> String;
    let series: [(&[std::path::PathBuf], &[String], Section); 2] = [
        (
            &spec.weight_series,
            &spec.weight_series_figures,
            ot3d_trainer::eval::report::weight_series_markdown,
        ),
        (
            &spec.gamma_series,
            &spec.gamma_series_figures,
            ot3d_trainer::eval::report::gamma_series_markdown,
        ),
    ];
    for (paths, figures, section) in series {
        let reports = paths
            .iter()
            .map(|path| read_eval(path))
            .collect::<Result<Vec<_>>>()?;
        if !reports.is_empty() {
            markdown.push('\n');
            markdown.push_str(&section(&reports, figures));
        }
    }
    ot3d_trainer::atomic_file::write_atomic(&spec.out, markdown.as_bytes())
        .with_context(|| format!("cannot write {}", spec.out.display()))?;
    println!("wrote {}", spec.out.display());
    Ok(())
}

fn bench_steps(args: &BenchStepsArgs) -> Result<()> {
    let nets = ot3d_trainer::training::config::NetsConfig {
        t_width: args.t_width,
        t_depth: args.t_depth,
        f_width: args.f_width,
        f_stages: args.f_stages,
        t_noise_channels: 0,
    };
    nets.transport()
        .validate()
        .and_then(|()| nets.potential().validate())
        .map_err(|e| anyhow::anyhow!("invalid network shape: {e}"))?;
    let backend = backend(args.backend);
    let device = device(backend).map_err(anyhow::Error::msg)?;
    let request = ot3d_trainer::bench::StepsRequest {
        nets,
        batch: args.batch as usize,
        warmup: args.warmup,
        reps: args.reps as usize,
    };
    ot3d_models::nets::set_conv_route(args.conv.route());
    if args.conv == ConvArg::GemmIm2col {
        use ot3d_models::nets::gemm_conv::kernels::{GridKernel, set_grid_kernel};
        set_grid_kernel(GridKernel::Gemm);
    }
    let label = match backend {
        Backend::Cpu => format!("cpu, {} conv", args.conv.name()),
        _ if args.conv == ConvArg::Im2col => format!("{}, im2col conv", backend.name()),
        _ => backend.name().to_string(),
    };
    let row = ot3d_trainer::bench::measure_steps(&request, &device, &label);
    println!("{}", serde_json::to_string(&row)?);
    Ok(())
}

fn bench_conv(args: &BenchConvArgs) -> Result<()> {
    let geometry = ot3d_models::nets::gemm_conv::kernels::ConvGeometry {
        batch: args.batch as usize,
        channels_in: args.channels_in as usize,
        channels_out: args.channels_out as usize,
        size: [args.size as usize; 3],
        kernel: 3,
        stride: 1,
        padding: 1,
    };
    for row in ot3d_trainer::bench::measure_conv(&geometry, args.reps as usize) {
        println!("{}", serde_json::to_string(&row)?);
    }
    Ok(())
}

fn bench_sgemm(args: &BenchSgemmArgs) -> Result<()> {
    let device = device(backend(args.backend)).map_err(anyhow::Error::msg)?;
    let row = ot3d_trainer::bench::measure_sgemm(args.size as usize, args.reps as usize, &device);
    println!("{}", serde_json::to_string(&row)?);
    Ok(())
}

fn bench_gaussian(args: &BenchGaussianArgs) -> Result<()> {
    use ot3d_trainer::gaussian::problem::GaussianPair;
    use ot3d_trainer::gaussian::report::GaussianEntry;
    use ot3d_trainer::gaussian::solver::{GaussianNotConfig, solve};
    let device = device(backend(args.backend)).map_err(anyhow::Error::msg)?;
    println!(
        "NOT with MLPs between two Gaussians (known OT map); L2-UV = 100·E‖T(x) − T*(x)‖² / Var(Y)"
    );
    println!(
        "{:>5} {:>10} {:>13} {:>9} {:>9} {:>9}",
        "d", "L2-UV %", "identity %", "T params", "f params", "seconds"
    );
    let mut rows = Vec::new();
    for &dim in &args.dims {
        let dim = dim as usize;
        let config = GaussianNotConfig::new()
            .with_hidden(args.hidden.map_or(dim.max(128), |h| h as usize))
            .with_layers(args.layers as usize)
            .with_steps(args.steps as usize)
            .with_t_steps(args.t_steps as usize)
            .with_batch(args.batch as usize)
            .with_lr_t(args.lr_t)
            .with_lr_f(args.lr_f)
            .with_eval_every(args.eval_every as usize)
            .with_seed(args.seed);
        let pair = GaussianPair::random(dim, args.seed.wrapping_add(dim as u64));
        let bar = ot3d_trainer::progress::steps_bar(args.steps as u64, true);
        bar.set_message(format!("d = {dim}"));
        let row = solve(&pair, &config, &device, |point| {
            bar.set_position(point.step as u64);
            bar.set_message(format!("d = {dim}: L2-UV {:.2}%", point.l2_uv_percent));
        });
        bar.finish_and_clear();
        println!(
            "{:>5} {:>10.3} {:>13.1} {:>9} {:>9} {:>9.1}",
            dim,
            row.l2_uv_percent,
            row.identity_l2_uv_percent,
            row.t_params,
            row.f_params,
            row.seconds
        );
        rows.push(GaussianEntry { config, row });
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&rows)?;
        ot3d_trainer::atomic_file::write_atomic(path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &args.figure {
        write_png(path, &ot3d_trainer::gaussian::report::curves_figure(&rows))?;
    }
    Ok(())
}
