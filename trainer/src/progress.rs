//! The progress bar every long loop shows: position, message, elapsed, ETA and rate.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over `len` steps, or a hidden one when `visible` is false (quiet runs, tests).
pub fn steps_bar(len: u64, visible: bool) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} steps {msg} [{elapsed_precise} < {eta_precise}, {per_sec}]",
        )
        .expect("valid template"),
    );
    bar
}
