//! Progress for the long modes (the corpus through the binaries, the drills, the failover harness):
//! a bar on a terminal — lanes or cases done, elapsed, failures so far — and nothing at all when
//! stdout is not a terminal or `CI` is set, so logs and reports stay exactly as they were.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal as _;

/// A progress bar that may be hidden. Cheap to clone; every method is a no-op when hidden.
#[derive(Clone)]
pub struct Progress {
    bar: ProgressBar,
    failures: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Progress {
    /// A bar of `total` steps named `what` (`cases`, `schedules`), shown only for a person watching.
    pub fn new(total: u64, what: &str) -> Self {
        let watched = std::io::stdout().is_terminal() && std::env::var_os("CI").is_none();
        let bar = if watched {
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        let template = format!(
            "{{elapsed_precise}} [{{bar:30}}] {{pos}}/{{len}} {what} {{msg}} (eta {{eta}})"
        );
        if let Ok(style) = ProgressStyle::with_template(&template) {
            bar.set_style(style.progress_chars("=> "));
        }
        Self {
            bar,
            failures: Default::default(),
        }
    }

    /// One step done; `failed` counts it among the failures shown.
    pub fn step(&self, failed: bool) {
        if failed {
            let n = self
                .failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1;
            self.bar.set_message(format!("· {n} failed so far"));
        }
        self.bar.inc(1);
    }

    /// Sets how many steps are done (for loops that count their own).
    pub fn at(&self, done: u64) {
        self.bar.set_position(done);
    }

    /// Shows what is running now (a lane starting, say).
    pub fn note(&self, message: impl Into<std::borrow::Cow<'static, str>>) {
        self.bar.set_message(message);
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
