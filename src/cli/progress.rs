//! Progress bars where people look: on a terminal, one bar per phase of a
//! run (records fetched of what PowerSchool's counts announced, planning,
//! rows written of the plan's rows), drawn with indicatif on stderr. Without
//! a terminal (a pipe, a file, systemd) nothing is drawn and the log lines
//! say how the run goes, as always.

use crate::store::runs::RunPhase;
use crate::sync::{ProgressCounts, RunProgress};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Whether bars are drawn: stderr is a terminal.
pub fn on_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// The bars of one run (or fetch, or plan); `finish` draws them a last time.
pub(super) struct Bars {
    pub(super) progress: Arc<RunProgress>,
    drawing: Option<(watch::Sender<bool>, JoinHandle<()>)>,
}

impl Bars {
    /// Bars for a new `RunProgress`, drawn only on a terminal.
    pub(super) fn start() -> Bars {
        let progress = RunProgress::new();
        let drawing = on_terminal().then(|| {
            let (stop, stopped) = watch::channel(false);
            let handle = tokio::spawn(draw(progress.clone(), stopped));
            (stop, handle)
        });
        Bars { progress, drawing }
    }

    /// The last counts drawn, the bars left on screen.
    pub(super) async fn finish(self) {
        if let Some((stop, handle)) = self.drawing {
            let _ = stop.send(true);
            let _ = handle.await;
        }
    }
}

/// Follows the progress until stopped, one bar per phase.
async fn draw(progress: Arc<RunProgress>, mut stopped: watch::Receiver<bool>) {
    let mut changes = progress.subscribe();
    let screen = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
    let mut phases = PhaseBars::default();
    loop {
        phases.show(&screen, &progress.counts(), progress.phase());
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { break },
            _ = stopped.wait_for(|s| *s) => break,
        }
    }
    phases.show(&screen, &progress.counts(), progress.phase());
    phases.finish_all();
}

#[derive(Default)]
struct PhaseBars {
    fetch: Option<ProgressBar>,
    plan: Option<ProgressBar>,
    apply: Option<ProgressBar>,
}

impl PhaseBars {
    fn show(&mut self, screen: &MultiProgress, counts: &ProgressCounts, phase: Option<RunPhase>) {
        let Some(phase) = phase else { return };
        let fetch = self
            .fetch
            .get_or_insert_with(|| screen.add(bar("fetching", "records fetched of {len} counted")));
        fetch.set_length(counts.expected.max(counts.fetched).max(1));
        fetch.set_position(counts.fetched);
        if phase == RunPhase::Fetching {
            return;
        }
        fetch.finish();
        let plan = self.plan.get_or_insert_with(|| {
            let spinner = screen.add(ProgressBar::new_spinner());
            spinner.set_style(
                ProgressStyle::with_template("{spinner} planning  {msg} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            spinner.enable_steady_tick(Duration::from_millis(120));
            spinner
        });
        if phase == RunPhase::Planning {
            plan.set_message("reading the state, deciding every connection");
            return;
        }
        plan.finish_with_message("done");
        if counts.to_write == 0 && phase == RunPhase::Done {
            return;
        }
        let apply = self
            .apply
            .get_or_insert_with(|| screen.add(bar("applying", "rows written of {len}")));
        apply.set_length(counts.to_write);
        apply.set_position(counts.written);
    }

    fn finish_all(&mut self) {
        for bar in [&self.fetch, &self.plan, &self.apply].into_iter().flatten() {
            if !bar.is_finished() {
                bar.abandon();
            }
        }
    }
}

fn bar(name: &str, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    let template = format!("{name:<9} [{{bar:30}}] {{pos}} {what}  {{elapsed}}");
    bar.set_style(
        ProgressStyle::with_template(&template)
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}
