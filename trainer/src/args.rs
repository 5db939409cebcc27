//! The `ot3d` command line's arguments (clap), and their conversion into library configs.

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use ot3d_models::mnist::Split;
use ot3d_models::nets::NoiseLayout;
use ot3d_models::voxel::{Coloring, DigitColor, Flavor, KaggleStyleConfig, VoxelConfig};
use ot3d_trainer::eval::report_spec::ReportSpec;
use ot3d_trainer::mnist_dir::DEFAULT_MNIST_DIR;
use ot3d_trainer::training::config::{
    AnchorDecay, DataSource, Preset, Selection, TrainConfig, WarmStart, WeakCost, WeakKernel,
};
use std::path::PathBuf;

/// Neural Optimal Transport on colored 3D MNIST digits.
#[derive(Parser)]
#[command(name = "ot3d", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Inspect and preview the data.
    #[command(subcommand)]
    Data(DataCommand),
    /// Learn the transport map T from one digit class to another (NOT, quadratic cost).
    Train(Box<TrainArgs>),
    /// Write a run's latest T as a model directory (transport.bpk + manifest.json).
    Export(ExportArgs),
    /// Run a model on held-out digits; save inputs and outputs as .npy [N, 2, 3, 16, 16, 16].
    Map(MapArgs),
    /// Write digits of one class as a compact file for the page's gallery (28×28 pixels each).
    ExportDigits(ExportDigitsArgs),
    /// The 3D digit classifier that evaluation uses.
    #[command(subcommand)]
    Classifier(ClassifierCommand),
    /// Measure a model: target accuracy, color preservation, FID-3D, cost, diversity.
    Eval(EvalArgs),
    /// Write docs/results.md from an `ot3d eval --json` report.
    Report(ReportArgs),
    /// Draw PNG figures: digits and their maps, or a run's loss curves.
    #[command(subcommand)]
    Figure(FigureCommand),
    /// Throughput figures, one row as JSON on stdout (`cargo xtask bench` runs the table).
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Milliseconds per T-step and f-step of the trainer's updates, FLOPs and peak memory.
    Steps(BenchStepsArgs),
    /// The device's f32 matrix-multiply rate (the GEMM the CPU backend's convolutions use).
    Sgemm(BenchSgemmArgs),
    /// One 3×3×3 stride-1 convolution on the CPU kernels: forward, input gradient and weight
    /// gradient, each by the direct kernel and by im2col + GEMM, in ms and GFLOP/s.
    Conv(BenchConvArgs),
    /// Known-answer OT benchmark: NOT with MLPs between two Gaussians in R^d, whose OT map is
    /// linear and known; prints L2-UV (%) per dimension.
    Gaussian(BenchGaussianArgs),
}

#[derive(Args)]
pub struct BenchGaussianArgs {
    /// Dimensions, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "2,16,64,256",
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub dims: Vec<u16>,
    /// Outer steps (one f-step and --t-steps T-steps each).
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub steps: u32,
    /// T-steps per outer step (K_T).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub t_steps: u16,
    /// Samples per batch.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u16).range(1..=16384))]
    pub batch: u16,
    /// Units per hidden layer of T and f (default: max(128, d)).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=8192))]
    pub hidden: Option<u16>,
    /// Hidden layers of T and f.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=32))]
    pub layers: u16,
    /// Adam learning rate of T.
    #[arg(long, default_value_t = 1e-3, value_parser = positive_float)]
    pub lr_t: f64,
    /// Adam learning rate of f.
    #[arg(long, default_value_t = 1e-3, value_parser = positive_float)]
    pub lr_f: f64,
    /// Measure L2-UV every this many outer steps.
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u32).range(1..))]
    pub eval_every: u32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also write every row, with its settings and L2-UV curve, as JSON here
    /// (`ot3d report --gaussian` reads it).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also draw the L2-UV curves, one panel per dimension, as a PNG here.
    #[arg(long)]
    pub figure: Option<PathBuf>,
    /// Where to compute.
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: BackendArg,
}

#[derive(Args)]
pub struct BenchStepsArgs {
    /// Digits per batch.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub batch: u16,
    /// Channels of T at full resolution.
    #[arg(long, default_value_t = 16)]
    pub t_width: usize,
    /// Levels of T's UNet below full resolution (1-3).
    #[arg(long, default_value_t = 2)]
    pub t_depth: usize,
    /// Channels of f's first stage.
    #[arg(long, default_value_t = 16)]
    pub f_width: usize,
    /// Pooling stages of f (1-4).
    #[arg(long, default_value_t = 3)]
    pub f_stages: usize,
    /// Untimed steps of each kind first.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Timed steps of each kind (the median is reported).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub reps: u16,
    /// Where to compute.
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: BackendArg,
    /// The convolution: ot3d's CPU kernels and burn's conv3d on GPUs (what training uses),
    /// ot3d's kernels without the direct and dense ones, burn's conv3d everywhere, or im2col +
    /// one matmul in burn's tensor ops everywhere (for A/B figures).
    #[arg(long, value_enum, default_value = "gemm")]
    pub conv: ConvArg,
}

/// Which 3D convolution runs on the CPU backend.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConvArg {
    /// ot3d's backend extensions: stride-1 convs by a direct SIMD kernel, 2³ volumes as one
    /// dense product, the rest im2col + GEMM, fused leaky ReLU.
    Gemm,
    /// The same without the direct and dense kernels: every conv im2col + GEMM (for A/B
    /// figures).
    GemmIm2col,
    /// burn 0.22's Flex conv3d and leaky ReLU with their default backward.
    Burn,
    /// im2col (k³ strided views stacked) and one batched matmul, in burn's tensor ops, so
    /// its backward is burn's autodiff; on every device.
    Im2col,
}

impl ConvArg {
    pub fn name(self) -> &'static str {
        match self {
            ConvArg::Gemm => "gemm",
            ConvArg::GemmIm2col => "gemm-im2col",
            ConvArg::Burn => "burn",
            ConvArg::Im2col => "im2col",
        }
    }

    pub fn route(self) -> ot3d_models::nets::ConvRoute {
        use ot3d_models::nets::ConvRoute;
        match self {
            ConvArg::Gemm | ConvArg::GemmIm2col => ConvRoute::Gemm,
            ConvArg::Burn => ConvRoute::Burn,
            ConvArg::Im2col => ConvRoute::Im2col,
        }
    }
}

#[derive(Args)]
pub struct BenchSgemmArgs {
    /// Rows = columns = inner size of the product.
    #[arg(long, default_value_t = 2048, value_parser = clap::value_parser!(u16).range(16..=16384))]
    pub size: u16,
    /// Timed products (the median is reported).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub reps: u16,
    /// Where to compute.
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: BackendArg,
}

#[derive(Args)]
pub struct BenchConvArgs {
    /// Samples per batch.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub batch: u16,
    /// Input channels.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub channels_in: u16,
    /// Output channels.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub channels_out: u16,
    /// Side of the cubic volume (the networks run 16, 8, 4 and 2).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub size: u16,
    /// Timed runs of each kernel (the median is reported).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub reps: u16,
}

#[derive(Subcommand)]
pub enum FigureCommand {
    /// Random source test digits of each color (rows) above their maps T(x).
    Map(FigureMapArgs),
    /// L_f, L_T and the transport cost per step, from a run's log.jsonl.
    Losses(FigureLossesArgs),
    /// The same source test digits of each color above a row per map (maps of one pair
    /// side by side, e.g. trained with different --w).
    Compare(FigureCompareArgs),
}

#[derive(Args)]
pub struct FigureCompareArgs {
    /// Model directory of each map, in row order (repeatable, at least one).
    #[arg(long, required = true)]
    pub weights: Vec<PathBuf>,
    /// Row label of each map, in the order of --weights [default: "w=W" for a map trained
    /// with a target weight, else the directory's name].
    #[arg(long)]
    pub label: Vec<String>,
    /// Title line above the rows.
    #[arg(long, default_value = "maps side by side")]
    pub title: String,
    /// Show each color's first digit and, per map, this many outputs T(x, z) for different
    /// noise z (stochastic maps); 1 shows --per-color digits, one output each.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub draws: u16,
    /// PNG file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Digits per color.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=32))]
    pub per_color: u16,
    /// Pixels per voxel edge.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u16).range(2..=32))]
    pub cell: u16,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Directory holding the MNIST IDX files.
    #[arg(long, default_value = DEFAULT_MNIST_DIR)]
    pub data_dir: PathBuf,
}

#[derive(Args)]
pub struct FigureMapArgs {
    /// Model directory (manifest.json + weights).
    #[arg(long)]
    pub weights: PathBuf,
    /// PNG file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Digits per color.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=32))]
    pub per_color: u16,
    /// Pixels per voxel edge.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u16).range(2..=32))]
    pub cell: u16,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Directory holding the MNIST IDX files.
    #[arg(long, default_value = DEFAULT_MNIST_DIR)]
    pub data_dir: PathBuf,
    /// Add the discrete-OT baseline: between x and T(x), the training target digit that
    /// exact OT pairs x with (among 256 of its color).
    #[arg(long)]
    pub partners: bool,
}

#[derive(Args)]
pub struct FigureLossesArgs {
    /// The training run directory.
    pub run: PathBuf,
    /// PNG file to write.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Subcommand)]
pub enum ClassifierCommand {
    /// Train it on colored 3D digits of all ten classes; report test accuracy per flavor.
    Train(ClassifierTrainArgs),
}

/// A flavor the classifier trains on.
#[derive(Clone, Copy, ValueEnum)]
pub enum ClassifierFlavorArg {
    Plain,
    Rotated,
    KaggleStyle,
}

#[derive(Args)]
pub struct ClassifierTrainArgs {
    /// Directory to write (classifier.bpk, manifest.json, train_config.json).
    #[arg(long, default_value = "models/pretrained/classifier")]
    pub out: PathBuf,
    /// Directory holding the MNIST IDX files (`cargo xtask data` puts them here).
    #[arg(long, default_value = DEFAULT_MNIST_DIR)]
    pub data_dir: PathBuf,
    /// Flavors mixed in training (comma-separated); accuracy is reported for all three.
    /// The shipped classifier is plain only; judge rotated or kaggle-style maps with one
    /// trained on `plain,rotated,kaggle-style`.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "plain")]
    pub flavors: Vec<ClassifierFlavorArg>,
    /// Optimizer steps.
    #[arg(long, default_value_t = 3000)]
    pub steps: u64,
    /// Digits per step.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Adam learning rate at the first step (it decays linearly to a tenth by the last).
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    /// Channels of the first conv (doubled three times).
    #[arg(long, default_value_t = 16)]
    pub width: usize,
    /// Length of the feature vector FID-3D compares.
    #[arg(long, default_value_t = 64)]
    pub features: usize,
    /// Test digits per class and flavor for the reported accuracy.
    #[arg(long, default_value_t = 100)]
    pub test_per_class: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Print the training config as JSON (what train_config.json will hold), then stop.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args)]
pub struct EvalArgs {
    /// Model directory (manifest.json + weights), e.g. models/pretrained/three-to-five.
    #[arg(long)]
    pub weights: PathBuf,
    /// Classifier directory (from `ot3d classifier train`).
    #[arg(long, default_value = "models/pretrained/classifier")]
    pub classifier: PathBuf,
    /// Source test digits to map, split evenly over the four colors.
    #[arg(long, default_value_t = 1000)]
    pub count: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Directory holding the MNIST IDX files.
    #[arg(long, default_value = DEFAULT_MNIST_DIR)]
    pub data_dir: PathBuf,
    /// Also write the full report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Add the headline numbers to the model's manifest.json (`metrics`).
    #[arg(long)]
    pub record: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Storage precision of exported weights.
#[derive(Clone, Copy, ValueEnum)]
pub enum PrecisionArg {
    /// f16 if it changes T(x) by less than 1e-3 (measured), else f32.
    Auto,
    F16,
    F32,
}

#[derive(Args)]
pub struct ExportArgs {
    /// The training run directory.
    pub run: PathBuf,
    /// Model directory to write, e.g. models/pretrained/three-to-five.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value = "auto")]
    pub precision: PrecisionArg,
    /// Export the latest checkpoint's T even when the run's model selection chose another.
    #[arg(long, conflicts_with = "step")]
    pub latest: bool,
    /// Export the T validated at this NOT step instead of the chosen one (a run trained
    /// with --select-keep-all keeps every validated T; others only the chosen one).
    #[arg(long, value_name = "N")]
    pub step: Option<u64>,
}

#[derive(Args)]
pub struct ExportDigitsArgs {
    /// Digit class to export.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(0..=9))]
    pub digit: u8,
    /// How many digits (the first ones of the class, in file order).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub count: u32,
    /// Which split (test: never seen in training).
    #[arg(long, value_enum, default_value = "test")]
    pub split: SplitArg,
    /// Directory holding the four MNIST IDX files.
    #[arg(long, default_value = DEFAULT_MNIST_DIR)]
    pub data_dir: PathBuf,
    /// File to write.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct MapArgs {
    /// Model directory (manifest.json + weights), e.g. models/pretrained/three-to-five.
    #[arg(long)]
    pub weights: PathBuf,
    /// Which split's source digits to map (test: never seen in training).
    #[arg(long, value_enum, default_value = "test")]
    pub digits: SplitArg,
    /// How many digits.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub count: u32,
    /// Color of the input digits (default: as the model was trained).
    #[arg(long, value_enum)]
    pub color: Option<ColorArg>,
    /// Seed for picking digits and for their color, rotation and jitter.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Directory holding the four MNIST IDX files.
    #[arg(long, default_value = DEFAULT_MNIST_DIR)]
    pub data_dir: PathBuf,
    /// Where to write the .npy.
    #[arg(long, default_value = "mapped.npy")]
    pub out: PathBuf,
    /// Where to compute.
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: BackendArg,
}

#[derive(Subcommand)]
pub enum DataCommand {
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
pub enum FlavorArg {
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
pub enum ColorArg {
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
    pub fn coloring(self) -> Coloring {
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
pub enum SplitArg {
    Train,
    Test,
}

impl SplitArg {
    pub fn split(self) -> Split {
        match self {
            SplitArg::Train => Split::Train,
            SplitArg::Test => Split::Test,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum NoiseLayoutArg {
    Voxel,
    Digit,
    Signs,
}

impl From<NoiseLayoutArg> for NoiseLayout {
    fn from(arg: NoiseLayoutArg) -> Self {
        match arg {
            NoiseLayoutArg::Voxel => NoiseLayout::Voxel,
            NoiseLayoutArg::Digit => NoiseLayout::Digit,
            NoiseLayoutArg::Signs => NoiseLayout::Signs,
        }
    }
}

/// How digits are made 3D, and where they come from.
#[derive(Args)]
pub struct VoxelArgs {
    /// Flavor of 3D digits.
    #[arg(long, value_enum, default_value = "plain")]
    flavor: FlavorArg,
    /// Color of the digits.
    #[arg(long, value_enum, default_value = "random")]
    color: ColorArg,
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

impl VoxelArgs {
    /// The voxel settings and where digits come from.
    pub fn data_source(&self) -> Result<DataSource> {
        let flavor = match self.flavor {
            FlavorArg::Plain | FlavorArg::KaggleH5 => Flavor::Plain,
            FlavorArg::Rotated => Flavor::Rotated {
                max_degrees: self.max_degrees,
            },
            FlavorArg::KaggleStyle => Flavor::KaggleStyle(KaggleStyleConfig::default()),
        };
        let voxel = VoxelConfig {
            flavor,
            coloring: self.color.coloring(),
            depth_band: [self.band_start, self.band_end],
        };
        voxel.validate().context("invalid voxel settings")?;
        match (self.flavor, &self.h5) {
            (FlavorArg::KaggleH5, Some(path)) => Ok(DataSource::KaggleH5 {
                path: path.clone(),
                voxel,
            }),
            (FlavorArg::KaggleH5, None) => {
                bail!(
                    "--flavor kaggle-h5 needs --h5 PATH, the Kaggle 3D MNIST file full_dataset_vectors.h5"
                )
            }
            (_, Some(_)) => bail!("--h5 is only used with --flavor kaggle-h5"),
            (_, None) => Ok(DataSource::Mnist {
                dir: self.data_dir.clone(),
                voxel,
            }),
        }
    }
}

#[derive(Args)]
pub struct PreviewArgs {
    #[command(flatten)]
    pub voxel: VoxelArgs,
    /// Digit class, 0-9.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(0..=9))]
    pub digit: u8,
    /// Which MNIST split to draw from.
    #[arg(long, value_enum, default_value = "train")]
    split: SplitArg,
    /// Seed for picking digits and for their color, rotation and jitter.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// How many digits to show.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub count: u16,
    /// Pixels per voxel edge.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u16).range(2..=32))]
    pub cell: u16,
    /// Digits per row of the sheet.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub columns: u16,
    /// Where to write the PNG.
    #[arg(long, default_value = "preview.png")]
    pub out: PathBuf,
}

impl PreviewArgs {
    pub fn split(&self) -> Split {
        self.split.split()
    }
}

/// Where the run computes.
#[derive(Clone, Copy, ValueEnum)]
pub enum BackendArg {
    /// burn's pure-Rust CPU backend (flex), always available.
    Cpu,
    /// WebGPU/wgpu (build with --features wgpu).
    Wgpu,
    /// Vulkan through wgpu (build with --features vulkan).
    Vulkan,
    /// CUDA (build with --features cuda on a machine with CUDA).
    Cuda,
}

#[derive(Args)]
pub struct TrainArgs {
    /// Run directory: config.json, log.jsonl and checkpoints go here.
    #[arg(long, default_value = "runs/three-to-five")]
    pub run: PathBuf,
    /// Continue the run in this directory from its latest checkpoint, with its saved
    /// config; only --steps (to train longer) and --backend apply.
    #[arg(long, conflicts_with_all = ["init_from", "run"])]
    pub resume: Option<PathBuf>,
    /// Start T from another run's map (its selected T, else its latest checkpoint's) and f
    /// from its latest checkpoint (transfer learning); the warm start, if any, then
    /// regresses that T onto this run's OT pairs.
    #[arg(long)]
    pub init_from: Option<PathBuf>,
    /// Stacking: learn a map from the outputs of this model directory's map (same digit
    /// pair, e.g. models/pretrained/three-to-five) to real targets; mapping a digit then
    /// runs that map first. With --init-from that map's run, T2 starts as T1.
    #[arg(long)]
    pub stack_on: Option<PathBuf>,
    /// Print the config and the networks' parameter counts, then stop.
    #[arg(long)]
    pub dry_run: bool,
    /// Digit class mapped from.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(0..=9))]
    source: u8,
    /// Digit class mapped to.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(0..=9))]
    target: u8,
    #[command(flatten)]
    voxel: VoxelArgs,
    /// The recipe every setting below starts from; a flag given overrides its setting.
    /// cpu-3to5: the shipped maps' (width 8, T three levels deep, batch 32, 1800 warm-start regression steps on
    /// exact OT pairs, then 300 NOT steps anchored to them with a drift-penalized potential
    /// and T's weights averaged; ~10 min on 2 cores). gpu-3to5: the NOT reference
    /// (width 16, batch 64, K_T 10, 10,000 outer steps) for GPU servers.
    #[arg(long, value_enum, default_value = "cpu-3to5")]
    pub preset: PresetArg,
    /// Outer steps, one f-step and --t-steps T-steps each [default: the preset's].
    #[arg(long)]
    pub steps: Option<u64>,
    /// T-steps per outer step (K_T) [default: the preset's].
    #[arg(long)]
    t_steps: Option<u32>,
    /// Digits per batch [default: the preset's].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Adam learning rate of T [default: the preset's].
    #[arg(long)]
    lr_t: Option<f64>,
    /// Adam learning rate of f [default: the preset's].
    #[arg(long)]
    lr_f: Option<f64>,
    /// Drift penalty ε ≥ 0 on f's scores, ε · (mean f(T(x))² + mean f(y)²) in every f-step,
    /// so a fast potential (e.g. --lr-f 1e-3) scores near ±1/(2ε) instead of running off to
    /// thousands while T lags; 0 is NOT's plain dual [default: the preset's].
    #[arg(long, value_name = "EPS")]
    f_drift: Option<f64>,
    /// Keep an exponential moving average of T's weights over the NOT steps with this decay
    /// (e.g. 0.99) and make it the run's map (export, --init-from); 0 = the last iterate
    /// [default: the preset's].
    #[arg(long, value_name = "DECAY")]
    t_average: Option<f64>,
    /// Model selection: every this many NOT steps, score T on held-out source training
    /// digits by FID-3D (the --select-judge classifier's features) and make the best the
    /// run's map; 0 = off, the last T is the map [default: the preset's].
    #[arg(long, value_name = "STEPS")]
    select_every: Option<u64>,
    /// Source training digits held out of training for model selection [default: the
    /// preset's, else 500].
    #[arg(long, value_name = "DIGITS")]
    select_held_out: Option<usize>,
    /// Classifier directory that judges model selection [default: the preset's, else
    /// models/pretrained/classifier].
    #[arg(long, value_name = "DIR")]
    select_judge: Option<PathBuf>,
    /// Keep every validated T (validated-t-step-N.bpk in the run), not only the best, so
    /// `ot3d export RUN --step N` can export any of them, e.g. to score each on the test
    /// digits (~1.5 MB each at the preset's size).
    #[arg(long)]
    select_keep_all: bool,
    /// Train the recipe this many times, at seeds --seed, --seed + 1, …, each in a
    /// subdirectory seed-N of the run, and make the map the restart with the lowest
    /// validation FID-3D [default: the preset's with model selection; 1 without it or with
    /// --init-from].
    #[arg(long, value_name = "N")]
    restarts: Option<u32>,
    /// Channels of T at full resolution [default: the preset's].
    #[arg(long)]
    t_width: Option<usize>,
    /// Levels of T's UNet below full resolution, 1-3 [default: the preset's].
    #[arg(long)]
    t_depth: Option<usize>,
    /// Channels of f's first stage [default: the preset's].
    #[arg(long)]
    f_width: Option<usize>,
    /// Pooling stages of f, 1-4 [default: the preset's].
    #[arg(long)]
    f_stages: Option<usize>,
    /// Checkpoint every this many outer steps, and at the end [default: the preset's].
    #[arg(long)]
    checkpoint_every: Option<u64>,
    /// Stop as diverged when a loss's magnitude exceeds this.
    #[arg(long, default_value_t = 1e6)]
    max_abs_loss: f64,
    /// Seed of the initial weights and of every batch: a config reproduces its run.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Train with the γ-weak quadratic cost (stochastic T(x, z)) and this final γ in [0, 1];
    /// without it the cost is the strong one and T is deterministic.
    #[arg(long)]
    weak_gamma: Option<f64>,
    /// Weak cost: outer steps over which γ ramps linearly from 0 to --weak-gamma.
    #[arg(long, default_value_t = 200, requires = "weak_gamma")]
    gamma_ramp_steps: u64,
    /// Weak cost: noise draws z per source digit in a T-step (Z ≥ 2).
    #[arg(long, default_value_t = 4, requires = "weak_gamma")]
    noise_draws: usize,
    /// Weak cost: noise channels fed to T beside the three colors.
    #[arg(long, default_value_t = 1, requires = "weak_gamma")]
    noise_channels: usize,
    /// Weak cost: standard deviation of the noise z.
    #[arg(long, default_value_t = 0.1, requires = "weak_gamma")]
    noise_std: f32,
    /// Weak cost: how z fills the noise channels: `voxel` (a fresh value at every voxel),
    /// `digit` (one value per channel and digit, a latent code the whole digit sees) or
    /// `signs` (as `digit`, but ±std: one of 2^channels codes, so a style-group map never
    /// sees a z between two groups).
    #[arg(long, value_enum, default_value_t = NoiseLayoutArg::Voxel, requires = "weak_gamma")]
    noise_layout: NoiseLayoutArg,
    /// Weak cost: the distance it is built on: `quadratic` (‖·‖², NOT's γ-weak cost) or
    /// `distance` (‖·‖, the energy-distance kernel cost, whose spread term keeps pushing
    /// coinciding draws apart; the warm start still regresses onto the quadratic weak plan).
    #[arg(long, value_enum, default_value_t = WeakKernel::Quadratic, requires = "weak_gamma")]
    weak_kernel: WeakKernel,
    /// Weak cost: fit T(x, z) to style groups instead of the exact weak-OT plan: the targets
    /// split in k equal groups along their leading principal axes, each source gets its
    /// exact-OT partner in every group, and the signs of z's first log2 k channels pick the
    /// group; of k = 1, 2, 4, … up to this K (2, 4, 8 or 16) the plan with the least γ-weak
    /// cost is kept (needs --noise-layout digit or signs; with --warm-start-anchor λ, NOT
    /// keeps that fit) [default: 0, off].
    #[arg(long, default_value_t = 0, requires = "weak_gamma")]
    weak_groups: usize,
    /// Incomplete (extremal) transport: weight w in [1, 16] on the potential's target term
    /// (Gazdieva et al. 2023), so T(x) need cover only the 1/w share of targets nearest the
    /// inputs; the warm start then pairs each source with its own target among w times as
    /// many. 1 is complete transport.
    #[arg(long = "w", value_name = "W", default_value_t = 1.0)]
    target_weight: f64,
    /// Warm start: regress T onto exact discrete-OT pairs of training digits for this many
    /// steps before NOT begins; 0 turns it off [default: the preset's].
    #[arg(long)]
    warm_start_steps: Option<u64>,
    /// Warm start: source and target training digits paired per color (exact assignment)
    /// [default: the preset's, else 1024].
    #[arg(long)]
    warm_start_pairs: Option<usize>,
    /// Warm start: Adam learning rate of the regression [default: the preset's, else 1e-3].
    #[arg(long)]
    warm_start_lr: Option<f64>,
    /// Warm start: f-only steps after the regression (T fixed), so NOT begins with a
    /// potential that already tells T(x) from real targets [default: 0].
    #[arg(long)]
    warm_start_f_steps: Option<u64>,
    /// Warm start: split the regression into this many cycles, each restarting Adam
    /// (warm restarts) [default: the preset's, else 1].
    #[arg(long)]
    warm_start_cycles: Option<u64>,
    /// Warm start: also restart Adam after this regression step (repeatable), e.g. 1800 in
    /// a 2400-step warm start [default: none].
    #[arg(long)]
    warm_start_restart_after: Vec<u64>,
    /// Warm start: keep the regression onto the same exact-OT pairs in every NOT T-step with
    /// this weight λ (L_T + λ‖T(x) − y‖²/D, x and y from the pairs), so NOT sharpens the
    /// regressed map instead of undoing it; 0 = plain NOT [default: the preset's, else 0;
    /// 0 with --weak-gamma].
    #[arg(long)]
    warm_start_anchor: Option<f64>,
    /// Warm start: decay the anchor's λ geometrically to this weight at the last outer step
    /// (e.g. 100 → 1 over --steps), so the pairing holds T while the potential learns and
    /// lets go later [default: the preset's, else λ constant].
    #[arg(long, value_name = "LAMBDA")]
    warm_start_anchor_final: Option<f64>,
    /// Warm start: keep an exponential moving average of T's weights with this decay
    /// (e.g. 0.999) and continue from it instead of the last step's weights; 0 = off
    /// [default: the preset's, else 0].
    #[arg(long, value_name = "DECAY")]
    warm_start_average: Option<f64>,
    /// Adam β1 of both networks (0 is common for such min-max games) [default: the preset's].
    #[arg(long)]
    beta_1: Option<f32>,
    /// Adam β2 of both networks [default: the preset's].
    #[arg(long)]
    beta_2: Option<f32>,
    /// Where to compute.
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: BackendArg,
    /// Data-parallel training on these devices of --backend, by index (e.g. 0,1,2,3 for
    /// four GPUs): every gradient step splits its batch evenly over them and sums their
    /// gradients on the first. The batch size must be a multiple of their number. On the
    /// CPU every index is the same processor, each replica on its own thread.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub devices: Vec<usize>,
    /// No progress bar (for logs and CI).
    #[arg(long)]
    pub quiet: bool,
}

/// `ot3d train --preset`.
#[derive(Clone, Copy, ValueEnum)]
pub enum PresetArg {
    #[value(name = "cpu-3to5")]
    Cpu3to5,
    #[value(name = "gpu-3to5")]
    Gpu3to5,
}

impl PresetArg {
    pub fn preset(self) -> Preset {
        match self {
            PresetArg::Cpu3to5 => Preset::Cpu3to5,
            PresetArg::Gpu3to5 => Preset::Gpu3to5,
        }
    }
}

impl TrainArgs {
    /// The config of a new run: the preset's, with every flag given on top.
    pub fn config(&self) -> Result<TrainConfig> {
        let mut config = TrainConfig::preset(self.preset.preset(), Default::default());
        config.source = self.source;
        config.target = self.target;
        config.data = self.voxel.data_source()?;
        let set = |target: &mut usize, value: Option<usize>| {
            if let Some(v) = value {
                *target = v;
            }
        };
        set(&mut config.nets.t_width, self.t_width);
        set(&mut config.nets.t_depth, self.t_depth);
        set(&mut config.nets.f_width, self.f_width);
        set(&mut config.nets.f_stages, self.f_stages);
        set(&mut config.batch_size, self.batch_size);
        config.steps = self.steps.unwrap_or(config.steps);
        config.t_steps = self.t_steps.unwrap_or(config.t_steps);
        config.lr_t = self.lr_t.unwrap_or(config.lr_t);
        config.lr_f = self.lr_f.unwrap_or(config.lr_f);
        config.beta_1 = self.beta_1.unwrap_or(config.beta_1);
        config.beta_2 = self.beta_2.unwrap_or(config.beta_2);
        config.checkpoint_every = self.checkpoint_every.unwrap_or(config.checkpoint_every);
        config.max_abs_loss = self.max_abs_loss;
        config.seed = self.seed;
        config.nets.t_noise_channels = if self.weak_gamma.is_some() {
            self.noise_channels
        } else {
            0
        };
        config.weak = self.weak_gamma.map(|gamma| WeakCost {
            gamma,
            gamma_ramp_steps: self.gamma_ramp_steps,
            draws: self.noise_draws,
            noise_std: self.noise_std,
            noise_layout: self.noise_layout.into(),
            kernel: self.weak_kernel,
            groups: self.weak_groups,
        });
        // The warm start: the preset's, changed or switched on/off by the flags given.
        let preset_warm = config.warm_start.clone();
        let steps = self
            .warm_start_steps
            .unwrap_or(preset_warm.as_ref().map_or(0, |w| w.steps));
        config.warm_start = (steps > 0).then(|| WarmStart {
            steps,
            pairs_per_color: self
                .warm_start_pairs
                .unwrap_or(preset_warm.as_ref().map_or(1024, |w| w.pairs_per_color)),
            lr: self
                .warm_start_lr
                .unwrap_or(preset_warm.as_ref().map_or(1e-3, |w| w.lr)),
            f_steps: self
                .warm_start_f_steps
                .unwrap_or(preset_warm.as_ref().map_or(0, |w| w.f_steps)),
            cycles: self
                .warm_start_cycles
                .unwrap_or(preset_warm.as_ref().map_or(1, |w| w.cycles)),
            restart_after: if self.warm_start_restart_after.is_empty() {
                preset_warm
                    .as_ref()
                    .map_or(Vec::new(), |w| w.restart_after.clone())
            } else {
                self.warm_start_restart_after.clone()
            },
            // A stochastic map fits a plan, not pairs: the preset's anchor is for strong
            // runs (with --weak-gamma an anchor needs --weak-groups, and validation says so).
            anchor: self
                .warm_start_anchor
                .unwrap_or(if self.weak_gamma.is_some() {
                    0.0
                } else {
                    preset_warm.as_ref().map_or(0.0, |w| w.anchor)
                }),
            anchor_decay: match self.warm_start_anchor_final {
                Some(to) => Some(AnchorDecay {
                    to,
                    over_steps: config.steps,
                }),
                None => preset_warm.as_ref().and_then(|w| w.anchor_decay.clone()),
            },
            average: self
                .warm_start_average
                .unwrap_or(preset_warm.as_ref().map_or(0.0, |w| w.average)),
        });
        if self.warm_start_average.is_some() && config.warm_start.is_none() {
            anyhow::bail!(
                "--warm-start-average averages the warm start's regression: give \
                 --warm-start-steps N > 0"
            );
        }
        if self.warm_start_anchor.is_some_and(|a| a != 0.0) && config.warm_start.is_none() {
            anyhow::bail!(
                "--warm-start-anchor needs a warm start (its pairs): give --warm-start-steps N > 0"
            );
        }
        if self.warm_start_anchor_final.is_some()
            && config.warm_start.as_ref().is_none_or(|w| w.anchor == 0.0)
        {
            anyhow::bail!(
                "--warm-start-anchor-final decays the anchor: give --warm-start-anchor λ > 0 \
                 (and --warm-start-steps N > 0)"
            );
        }
        config.stack_on = self.stack_on.clone();
        config.target_weight = self.target_weight;
        config.f_drift = self.f_drift.unwrap_or(config.f_drift);
        config.t_average = self.t_average.unwrap_or(config.t_average);
        let preset_select = config.select.clone();
        let every = self
            .select_every
            .unwrap_or(preset_select.as_ref().map_or(0, |s| s.every));
        if every == 0
            && (self.select_held_out.is_some()
                || self.select_judge.is_some()
                || self.select_keep_all)
        {
            anyhow::bail!(
                "--select-held-out, --select-judge and --select-keep-all set up model selection: give --select-every N > 0"
            );
        }
        config.select = (every > 0).then(|| Selection {
            every,
            held_out: self
                .select_held_out
                .unwrap_or(preset_select.as_ref().map_or(500, |s| s.held_out)),
            judge: self.select_judge.clone().unwrap_or_else(|| {
                preset_select.map_or(PathBuf::from("models/pretrained/classifier"), |s| s.judge)
            }),
            keep_all: self.select_keep_all,
        });
        // Restarts choose by the validation, and a transferred start is the same for all.
        let single = config.select.is_none() || self.init_from.is_some();
        config.restarts = self
            .restarts
            .unwrap_or(if single { 1 } else { config.restarts });
        if config.restarts > 1 && self.init_from.is_some() {
            anyhow::bail!(
                "--restarts trains new runs at new seeds: give --restarts 1 with --init-from"
            );
        }
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid training settings: {e}"))?;
        Ok(config)
    }
}

#[derive(Args)]
pub struct ReportArgs {
    /// Everything below from a JSON spec kept beside the page (e.g. docs/report-3to5.json:
    /// eval, classifier, out, figures, compare, ...; paths relative to the spec), so that
    /// the page is regenerated by one command.
    #[arg(long, conflicts_with_all = ["eval", "classifier", "out", "figure", "gaussian",
          "compare", "weight_series", "gamma_series"])]
    pub spec: Option<PathBuf>,
    /// The JSON written by `ot3d eval --json`.
    #[arg(long, required_unless_present = "spec")]
    pub eval: Option<PathBuf>,
    /// The classifier directory the evaluation used.
    #[arg(long, default_value = "models/pretrained/classifier")]
    pub classifier: PathBuf,
    /// Markdown file to write.
    #[arg(long, default_value = "docs/results.md")]
    pub out: PathBuf,
    /// Images to embed, as paths relative to the report (repeatable).
    #[arg(long)]
    pub figure: Vec<String>,
    /// Also add the Gaussian known-answer benchmark: the JSON of `ot3d bench gaussian --json`.
    #[arg(long)]
    pub gaussian: Option<PathBuf>,
    /// The Gaussian benchmark's figure, as a path relative to the report.
    #[arg(long, requires = "gaussian")]
    pub gaussian_figure: Option<String>,
    /// Also compare other maps: an `ot3d eval --json` report each (repeatable), one row each.
    #[arg(long)]
    pub compare: Vec<PathBuf>,
    /// Images for the comparison section, as paths relative to the report (repeatable).
    #[arg(long, requires = "compare")]
    pub compare_figure: Vec<String>,
    /// Also add the incomplete-transport section: an `ot3d eval --json` report per map
    /// trained with another `--w` (repeatable), one row each, sorted by w.
    #[arg(long)]
    pub weight_series: Vec<PathBuf>,
    /// Images for the incomplete-transport section, as paths relative to the report.
    #[arg(long, requires = "weight_series")]
    pub weight_series_figure: Vec<String>,
    /// Also add the weak-cost section: an `ot3d eval --json` report per map trained with
    /// another `--weak-gamma` (repeatable), one row each, sorted by γ.
    #[arg(long)]
    pub gamma_series: Vec<PathBuf>,
    /// Images for the weak-cost section, as paths relative to the report.
    #[arg(long, requires = "gamma_series")]
    pub gamma_series_figure: Vec<String>,
}

impl ReportArgs {
    /// What the page holds: the spec file's, or the flags'; either is checked.
    pub fn spec(&self) -> Result<ReportSpec> {
        if let Some(path) = &self.spec {
            return Ok(ReportSpec::read(path)?);
        }
        let spec = ReportSpec {
            eval: self.eval.clone().context("give --eval or --spec")?,
            classifier: self.classifier.clone(),
            out: self.out.clone(),
            figures: self.figure.clone(),
            gaussian: self.gaussian.clone(),
            gaussian_figure: self.gaussian_figure.clone(),
            compare: self.compare.clone(),
            compare_figures: self.compare_figure.clone(),
            weight_series: self.weight_series.clone(),
            weight_series_figures: self.weight_series_figure.clone(),
            gamma_series: self.gamma_series.clone(),
            gamma_series_figures: self.gamma_series_figure.clone(),
        };
        spec.check()?;
        Ok(spec)
    }
}

/// A finite number above zero (learning rates).
fn positive_float(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        Ok(_) => Err(format!("{text} must be a finite number above 0, e.g. 1e-3")),
        Err(_) => Err(format!("{text:?} is not a number; give e.g. 1e-3")),
    }
}
