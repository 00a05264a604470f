//! Progress for long command-line work (`replay`, `export`, `purge`, `demo`): a bar with a
//! count and a rate on a terminal, nothing at all when stderr is not a terminal or with
//! `--quiet`. It draws on stderr, so it never mixes into the data a command prints on stdout.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    fn bar(quiet: bool, length: Option<u64>, template: &str) -> Progress {
        let bar = match length {
            Some(length) => ProgressBar::new(length),
            None => ProgressBar::new_spinner(),
        };
        if quiet || !std::io::stderr().is_terminal() {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        } else {
            bar.set_draw_target(ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.enable_steady_tick(Duration::from_millis(120));
        }
        Progress { bar }
    }

    /// A bar over `total` units of work, with a count, a rate and the time left.
    pub fn count(quiet: bool, total: u64, what: &str) -> Progress {
        let progress = Progress::bar(
            quiet,
            Some(total),
            "{prefix} [{bar:30}] {human_pos}/{human_len} {msg} ({per_sec}, {eta} left)",
        );
        progress.bar.set_prefix(what.to_string());
        progress
    }

    /// Numbered steps of a job, each named by [`Progress::say`], with the time so far.
    pub fn steps(quiet: bool, total: u64, what: &str) -> Progress {
        let progress = Progress::bar(
            quiet,
            Some(total),
            "{spinner} {prefix} [{bar:20}] {pos}/{len} {msg} ({elapsed})",
        );
        progress.bar.set_prefix(what.to_string());
        progress
    }

    /// A spinner for work of unknown size, with a running count and rate.
    pub fn open_ended(quiet: bool, what: &str) -> Progress {
        let progress = Progress::bar(
            quiet,
            None,
            "{spinner} {prefix} {human_pos} {msg} ({per_sec}, {elapsed})",
        );
        progress.bar.set_prefix(what.to_string());
        progress
    }

    pub fn say(&self, message: &str) {
        self.bar.set_message(message.to_string());
    }

    pub fn inc(&self) {
        self.bar.inc(1);
    }

    pub fn add(&self, n: u64) {
        self.bar.inc(n);
    }

    pub fn set(&self, position: u64) {
        self.bar.set_position(position);
    }

    /// Runs `f` (which writes to the terminal, e.g. a log line) with the bar out of the way.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.bar.suspend(f)
    }

    /// Removes the bar; what the command reports comes after.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
