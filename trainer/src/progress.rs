//! The progress bar every long loop shows: position, message, elapsed, ETA and rate; where
//! stderr is not a terminal (nohup, a batch job, a pipe) a line of the same every minute.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::time::Duration;

/// How often a bar that cannot draw prints its state as a line instead.
const LINE_EVERY: Duration = Duration::from_secs(60);

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
    // indicatif draws nothing without a terminal, so a run under nohup or a scheduler would
    // say nothing until it ends.
    if bar.is_hidden() {
        print_lines(&bar, LINE_EVERY, std::io::stderr());
    }
    bar
}

/// The bar's state as one line: `120/800 steps MESSAGE [elapsed 0:02:00, ETA 0:11:20]`.
pub fn state_line(bar: &ProgressBar) -> String {
    let clock = |d: Duration| {
        let s = d.as_secs();
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    };
    let len = bar.length().map_or("?".to_string(), |len| len.to_string());
    let message = bar.message();
    let message = if message.is_empty() {
        String::new()
    } else {
        format!(" {message}")
    };
    format!(
        "{}/{len} steps{message} [elapsed {}, ETA {}]",
        bar.position(),
        clock(bar.elapsed()),
        clock(bar.eta())
    )
}

/// Writes `state_line` to `out` every `every` until the bar is finished or dropped.
fn print_lines<W: Write + Send + 'static>(
    bar: &ProgressBar,
    every: Duration,
    mut out: W,
) -> std::thread::JoinHandle<()> {
    let bar = bar.downgrade();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(every);
            let Some(bar) = bar.upgrade() else { return };
            if bar.is_finished() {
                return;
            }
            let _ = writeln!(out, "{}", state_line(&bar));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_bar_without_a_terminal_prints_its_state_until_it_finishes() {
        let bar = ProgressBar::hidden();
        bar.set_length(800);
        bar.set_position(120);
        bar.set_message("warm start");
        let out = Shared::default();
        let printer = print_lines(&bar, Duration::from_millis(5), out.clone());
        while out.0.lock().unwrap().is_empty() {
            std::thread::sleep(Duration::from_millis(5));
        }
        bar.finish();
        printer.join().unwrap();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let first = text.lines().next().unwrap();
        assert!(
            first.starts_with("120/800 steps warm start [elapsed 0:00:0"),
            "{first}"
        );
        assert!(first.contains(", ETA "), "{first}");
    }

    #[test]
    fn a_dropped_bar_stops_its_printer() {
        let bar = ProgressBar::hidden();
        let printer = print_lines(&bar, Duration::from_millis(5), Shared::default());
        drop(bar);
        printer.join().unwrap();
    }

    #[test]
    fn the_line_without_message_or_length() {
        let bar = ProgressBar::no_length();
        bar.set_position(7);
        let line = state_line(&bar);
        assert!(
            line.starts_with("7/? steps [elapsed 0:00:00, ETA "),
            "{line}"
        );
    }
}
