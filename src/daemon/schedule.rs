//! When the daemon fires: the configured six-field cron read in the
//! district's time zone, minus blackout nights.
//!
//! Division of labour with tokio-cron-scheduler: the daemon's wake-ups are
//! tokio-cron-scheduler jobs (`clock::SchedulerClock`), but the instant of
//! each fire is computed here, with `croner` (the cron engine
//! tokio-cron-scheduler itself parses and evaluates with, same parser
//! options) in the chrono-tz zone. Why not hand tokio-cron-scheduler the cron
//! expression as a repeating `Job::new_async_tz` job: version 0.13 computes
//! every tick after the first with the UTC offset the zone had when the job
//! was created (`time_offset_seconds`), so a daemon started in summer (MDT,
//! -6) would fire at 01:00 MST all winter, and one started in winter at 23:00
//! MDT the night before all summer. Computing each fire in the zone keeps
//! local midnight local midnight on the days the clocks change, and lets the
//! tests check those days by calling the same function with injected times.

use super::DaemonError;
use crate::config::{BlackoutRange, ScheduleSettings};
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;

#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    expression: String,
    timezone: Tz,
    blackout: Vec<BlackoutRange>,
}

/// The next run the schedule will really start, and the blackout fires
/// skipped on the way to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextRun {
    pub fire: DateTime<Tz>,
    pub skipped: Vec<DateTime<Tz>>,
}

impl Schedule {
    pub fn new(settings: &ScheduleSettings) -> Result<Schedule, DaemonError> {
        Self::from_parts(&settings.cron, settings.timezone, settings.blackout.clone())
    }

    pub fn from_parts(
        expression: &str,
        timezone: Tz,
        blackout: Vec<BlackoutRange>,
    ) -> Result<Schedule, DaemonError> {
        let bad = |message: String| DaemonError::Schedule {
            expression: expression.to_string(),
            message,
        };
        // The same parser settings as tokio-cron-scheduler's jobs.
        let cron = Cron::new(expression)
            .with_seconds_required()
            .with_dom_and_dow()
            .parse()
            .map_err(|e| bad(e.to_string()))?;
        // An expression that never matches (30 February) would leave the
        // daemon with nothing to wait for; refuse it at start.
        let probe = Utc::now().with_timezone(&timezone);
        cron.find_next_occurrence(&probe, false)
            .map_err(|e| bad(format!("it never fires ({e})")))?;
        Ok(Schedule {
            cron,
            expression: expression.to_string(),
            timezone,
            blackout,
        })
    }

    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The district night a fire belongs to: its local date.
    pub fn night_of(&self, fire: DateTime<Tz>) -> NaiveDate {
        fire.date_naive()
    }

    /// The blackout range a night falls in, if any.
    pub fn blackout_for(&self, night: NaiveDate) -> Option<&BlackoutRange> {
        self.blackout
            .iter()
            .find(|b| b.from <= night && night <= b.to)
    }

    /// The next fire after `after` that is not in a blackout range.
    pub fn next_scheduled(&self, after: DateTime<Utc>) -> Result<NextRun, DaemonError> {
        let mut skipped = Vec::new();
        let mut cursor = after;
        loop {
            let fire = next_fire(cursor, self)?;
            let Some(range) = self.blackout_for(self.night_of(fire)) else {
                return Ok(NextRun { fire, skipped });
            };
            skipped.push(fire);
            // Jump to the end of this night rather than stepping through
            // every fire in it (a per-second cron over a summer would be
            // millions): one step, and one skipped fire, per blackout night.
            let night = self.night_of(fire);
            let next_night = night.succ_opt().unwrap_or(range.to);
            let resume_at = self
                .timezone
                .from_local_datetime(&next_night.and_time(NaiveTime::MIN))
                .earliest()
                .map(|t| t.with_timezone(&Utc) - Duration::seconds(1))
                .unwrap_or(fire.with_timezone(&Utc));
            cursor = resume_at.max(fire.with_timezone(&Utc));
            if skipped.len() > 10_000 {
                // Only reachable with decades of blackout nights; keep the
                // list bounded, the fire is still right.
                skipped.drain(..5_000);
            }
        }
    }
}

/// The first fire strictly after `after`, in the district's time zone.
///
/// Wall-clock semantics: a fire at a local time that does not exist (the
/// hour skipped when clocks spring forward) happens at the first instant
/// after the gap; a local time that happens twice (the hour repeated when
/// clocks fall back) fires once.
pub fn next_fire(after: DateTime<Utc>, schedule: &Schedule) -> Result<DateTime<Tz>, DaemonError> {
    let tz = schedule.timezone;
    let never = |message: String| DaemonError::Schedule {
        expression: schedule.expression.clone(),
        message,
    };
    let local_after = after.with_timezone(&tz);
    let mut from = local_after;
    // Each round moves `from` forward by at least a second; a schedule
    // that matched once at construction matches again within a year.
    for _ in 0..100_000 {
        let candidate = schedule
            .cron
            .find_next_occurrence(&from, false)
            .map_err(|e| never(format!("it has no fire time after {from} ({e})")))?;
        if candidate > local_after {
            return Ok(candidate);
        }
        // croner resolves a repeated local time to its first instant; when
        // `after` is already in the repeated hour that instant is in the
        // past. Take the later instant if it is still ahead, else search on.
        if let Some(later) = tz.from_local_datetime(&candidate.naive_local()).latest() {
            if later > local_after {
                return Ok(later);
            }
        }
        from = tz
            .from_local_datetime(&(candidate.naive_local() + Duration::seconds(1)))
            .latest()
            .filter(|t| *t > from)
            .unwrap_or(from + Duration::seconds(1));
    }
    Err(never(format!("no fire time found after {after}")))
}

/// A fire time as people in the district read it: `2026-11-24 00:00 MST`.
pub fn local_text(t: DateTime<Tz>) -> String {
    t.format("%Y-%m-%d %H:%M %Z").to_string()
}
