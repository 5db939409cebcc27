//! `ot3d`: the ot3d command line — data inspection and previews (training, export and
//! evaluation join here as they land).

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use ot3d_models::mnist::Split;
use ot3d_models::voxel::{Coloring, DigitColor, Flavor, KaggleStyleConfig, VoxelConfig};
use ot3d_trainer::digits::{ClassDigits, DigitOrigin};
use ot3d_trainer::mnist_dir::{DEFAULT_MNIST_DIR, load_split};
use ot3d_trainer::preview::{PreviewRequest, write_preview};
use std::path::PathBuf;
use std::process::ExitCode;

/// Neural Optimal Transport on colored 3D MNIST digits.
#[derive(Parser)]
#[command(name = "ot3d", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect and preview the data.
    #[command(subcommand)]
    Data(DataCommand),
}

#[derive(Subcommand)]
enum DataCommand {
    /// Verify the MNIST files and print how many digits of each class each split holds.
    Info {
        /// Directory holding the four MNIST IDX files (`cargo xtask data` fills data/mnist).
        #[arg(long, default_value = DEFAULT_MNIST_DIR)]
        data_dir: PathBuf,
    },
    /// Render random colored 3D digits of one class to a PNG sheet.
    Preview(PreviewArgs),
}

/// How 2D digits become 3D.
#[derive(Clone, Copy, ValueEnum)]
enum FlavorArg {
    /// The digit extruded through a band of depth slices.
    Plain,
    /// A random in-plane rotation (±--max-degrees), then extruded.
    Rotated,
    /// Point cloud, random 3D rotation, jitter, voxelized (how Kaggle's 3D MNIST was made).
    KaggleStyle,
    /// The real Kaggle 3D MNIST file (needs --h5).
    KaggleH5,
}

/// A digit's color.
#[derive(Clone, Copy, ValueEnum)]
enum ColorArg {
    /// One of red, yellow, green, blue at random per digit.
    Random,
    Red,
    Yellow,
    Green,
    Blue,
    /// A random hue at full saturation (the NOT reference's colorization).
    Hue,
}

impl ColorArg {
    fn coloring(self) -> Coloring {
        match self {
            ColorArg::Random => Coloring::Palette,
            ColorArg::Red => Coloring::Fixed(DigitColor::Red),
            ColorArg::Yellow => Coloring::Fixed(DigitColor::Yellow),
            ColorArg::Green => Coloring::Fixed(DigitColor::Green),
            ColorArg::Blue => Coloring::Fixed(DigitColor::Blue),
            ColorArg::Hue => Coloring::Hue,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum SplitArg {
    Train,
    Test,
}

/// Which digits, made 3D how.
#[derive(Args)]
struct DigitArgs {
    /// Flavor of 3D digits.
    #[arg(long, value_enum, default_value = "plain")]
    flavor: FlavorArg,
    /// Digit class, 0-9.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(0..=9))]
    digit: u8,
    /// Which MNIST split to draw from.
    #[arg(long, value_enum, default_value = "train")]
    split: SplitArg,
    /// Color of the digits.
    #[arg(long, value_enum, default_value = "random")]
    color: ColorArg,
    /// Seed for picking digits and for their color, rotation and jitter.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Largest in-plane rotation of the rotated flavor, in degrees.
    #[arg(long, default_value_t = 45.0)]
    max_degrees: f64,
    /// First depth slice of the extruded digit (plain, rotated).
    #[arg(long, default_value_t = 6)]
    band_start: usize,
    /// One past the last depth slice of the extruded digit (plain, rotated).
    #[arg(long, default_value_t = 12)]
    band_end: usize,
    /// Directory holding the four MNIST IDX files (`cargo xtask data` fills data/mnist).
    #[arg(long, default_value = DEFAULT_MNIST_DIR)]
    data_dir: PathBuf,
    /// The Kaggle 3D MNIST file full_dataset_vectors.h5 (for --flavor kaggle-h5).
    #[arg(long)]
    h5: Option<PathBuf>,
}

impl DigitArgs {
    fn origin(&self) -> Result<DigitOrigin> {
        let coloring = self.color.coloring();
        let flavor = match self.flavor {
            FlavorArg::Plain => Flavor::Plain,
            FlavorArg::Rotated => Flavor::Rotated {
                max_degrees: self.max_degrees,
            },
            FlavorArg::KaggleStyle => Flavor::KaggleStyle(KaggleStyleConfig::default()),
            FlavorArg::KaggleH5 => {
                let Some(path) = &self.h5 else {
                    bail!(
                        "--flavor kaggle-h5 needs --h5 PATH, the Kaggle 3D MNIST file full_dataset_vectors.h5"
                    );
                };
                return Ok(DigitOrigin::KaggleH5 {
                    path: path.clone(),
                    coloring,
                });
            }
        };
        if self.h5.is_some() {
            bail!("--h5 is only used with --flavor kaggle-h5");
        }
        let voxel = VoxelConfig {
            flavor,
            coloring,
            depth_band: [self.band_start, self.band_end],
        };
        voxel.validate().context("invalid voxel settings")?;
        Ok(DigitOrigin::Mnist {
            dir: self.data_dir.clone(),
            voxel,
        })
    }

    fn split(&self) -> Split {
        match self.split {
            SplitArg::Train => Split::Train,
            SplitArg::Test => Split::Test,
        }
    }
}

#[derive(Args)]
struct PreviewArgs {
    #[command(flatten)]
    digits: DigitArgs,
    /// How many digits to show.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    count: u16,
    /// Pixels per voxel edge.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u16).range(2..=32))]
    cell: u16,
    /// Digits per row of the sheet.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    columns: u16,
    /// Where to write the PNG.
    #[arg(long, default_value = "preview.png")]
    out: PathBuf,
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Data(DataCommand::Info { data_dir }) => data_info(&data_dir),
        Command::Data(DataCommand::Preview(args)) => data_preview(&args),
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
    let origin = args.digits.origin()?;
    let digits = ClassDigits::load(&origin, args.digits.split(), args.digits.digit)?;
    let request = PreviewRequest {
        count: args.count as usize,
        seed: args.digits.seed,
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
