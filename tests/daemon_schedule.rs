#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! The daemon's schedule (issue 5): fire times on the days the clocks change
//! (one fire per night at local midnight, the skipped and the repeated
//! hour), tokio-cron-scheduler agreeing with `next_fire` and waking the
//! daemon, and the daemon loop driven by an injected clock across both clock
//! changes of 2026, skipping a blackout night. The test that runs the daemon
//! gets a fresh database (`#[sqlx::test]`).

mod common;

use chrono::{DateTime, Duration as ChronoDuration, NaiveDate, TimeZone, Utc};
use chrono_tz::America::Edmonton;
use chrono_tz::Tz;
use common::daemon_setup::*;
use common::*;
use sqlx::PgPool;
use std::time::Duration;
use student_sync::config::BlackoutRange;
use student_sync::daemon::{next_fire, Clock, Daemon, Notifier, Schedule};
use student_sync::harness::fake_powerschool::Faults;

// ---------------------------------------------------------------- helpers

fn midnight_schedule(blackout: Vec<BlackoutRange>) -> Schedule {
    Schedule::from_parts("0 0 0 * * *", Edmonton, blackout).expect("the default cron parses")
}

/// Every fire of `schedule` from `from` up to `until`.
fn fires_between(
    schedule: &Schedule,
    from: DateTime<Tz>,
    until: DateTime<Tz>,
) -> Vec<DateTime<Tz>> {
    let mut out = Vec::new();
    let mut after = from.with_timezone(&Utc);
    loop {
        let f = next_fire(after, schedule).unwrap();
        if f > until {
            return out;
        }
        out.push(f);
        after = f.with_timezone(&Utc);
    }
}

// ---------------------------------------------------- 1. schedule and DST

/// Spring forward (8 March 2026, 02:00 → 03:00) and fall back (1 November
/// 2026, 02:00 → 01:00) in Edmonton: one fire per night, at local midnight,
/// 23 and 25 hours apart around the change.
#[test]
fn default_schedule_fires_once_per_night_at_local_midnight_across_dst() {
    let schedule = midnight_schedule(vec![]);
    for (from, until, short_or_long) in [
        (local(2026, 3, 5, 12, 0), local(2026, 3, 11, 12, 0), 23),
        (local(2026, 10, 29, 12, 0), local(2026, 11, 4, 12, 0), 25),
    ] {
        let fires = fires_between(&schedule, from, until);
        let nights: Vec<NaiveDate> = fires.iter().map(|f| f.date_naive()).collect();
        let expected: Vec<NaiveDate> = (1..=6)
            .map(|d| from.date_naive() + ChronoDuration::days(d))
            .collect();
        assert_eq!(nights, expected, "one fire per night: {fires:?}");
        for f in &fires {
            assert_eq!(f.format("%H:%M:%S").to_string(), "00:00:00", "{f}");
        }
        let gaps: Vec<i64> = fires
            .windows(2)
            .map(|w| (w[1] - w[0]).num_hours())
            .collect();
        assert_eq!(
            gaps.iter().filter(|h| **h == short_or_long).count(),
            1,
            "{gaps:?}"
        );
        assert_eq!(gaps.iter().filter(|h| **h == 24).count(), 4, "{gaps:?}");
    }
    // Spring: midnight MST is 07:00 UTC, the next midnight (MDT) 06:00 UTC.
    assert_eq!(
        next_fire(local(2026, 3, 8, 12, 0).with_timezone(&Utc), &schedule)
            .unwrap()
            .with_timezone(&Utc),
        Utc.with_ymd_and_hms(2026, 3, 9, 6, 0, 0).unwrap()
    );
}

/// A fire inside the skipped hour happens once, just after the gap; a fire
/// inside the repeated hour happens once, even asked from inside that hour.
#[test]
fn fires_in_the_skipped_and_repeated_hours_happen_once() {
    let spring = Schedule::from_parts("0 30 2 * * *", Edmonton, vec![]).unwrap();
    let fires = fires_between(&spring, local(2026, 3, 7, 12, 0), local(2026, 3, 9, 12, 0));
    let nights: Vec<NaiveDate> = fires.iter().map(|f| f.date_naive()).collect();
    assert_eq!(
        nights,
        vec![date(2026, 3, 8), date(2026, 3, 9)],
        "{fires:?}"
    );

    let autumn = Schedule::from_parts("0 30 1 * * *", Edmonton, vec![]).unwrap();
    let fires = fires_between(
        &autumn,
        local(2026, 10, 31, 12, 0),
        local(2026, 11, 2, 12, 0),
    );
    let nights: Vec<NaiveDate> = fires.iter().map(|f| f.date_naive()).collect();
    assert_eq!(
        nights,
        vec![date(2026, 11, 1), date(2026, 11, 2)],
        "{fires:?}"
    );
    // Asked from inside the repeated hour (01:45 MST, after the first 01:30
    // MDT): the next fire is the next night's, not the second 01:30.
    let first = fires[0];
    let inside = first.with_timezone(&Utc) + ChronoDuration::minutes(75);
    assert_eq!(
        next_fire(inside, &autumn).unwrap().date_naive(),
        date(2026, 11, 2)
    );
}

/// tokio-cron-scheduler, given the same cron and chrono-tz zone, schedules
/// its first tick where `next_fire` says; and the daemon's production clock
/// (a one-shot tokio-cron-scheduler job) wakes at the asked wall time.
#[tokio::test]
async fn tokio_cron_scheduler_agrees_and_wakes_the_daemon() {
    use tokio_cron_scheduler::{Job, JobScheduler};
    // Away from a minute boundary, where "the next fire" would depend on
    // the millisecond each side asks.
    use chrono::Timelike;
    let second = Utc::now().second();
    if !(3..=56).contains(&second) {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let mut scheduler = JobScheduler::new().await.unwrap();
    for expression in ["0 0 0 * * *", "0 30 2 * * *", "0 */5 * * * *"] {
        let job = Job::new_async_tz(expression, Edmonton, |_, _| Box::pin(async {})).unwrap();
        let id = scheduler.add(job).await.unwrap();
        let tick = scheduler
            .next_tick_for_job(id)
            .await
            .unwrap()
            .expect("a next tick");
        let schedule = Schedule::from_parts(expression, Edmonton, vec![]).unwrap();
        let ours = next_fire(Utc::now() - ChronoDuration::seconds(1), &schedule).unwrap();
        assert_eq!(tick, ours.with_timezone(&Utc), "{expression}");
    }

    let clock = student_sync::daemon::SchedulerClock::start().await.unwrap();
    let target = Utc::now() + ChronoDuration::milliseconds(1500);
    clock.sleep_until(target).await;
    assert!(Utc::now() >= target, "woke before the fire time");
}

/// The daemon loop itself, driven by an injected clock across both clock
/// changes of 2026: exactly one scheduled run per night, each fired at local
/// midnight, and a blackout night skipped with a log line.
#[sqlx::test]
async fn daemon_runs_once_per_night_across_dst_and_skips_blackout(pool: PgPool) {
    let (logs, _guard) = capture_logs();
    let fake = start_fake(small_district(), Faults::default()).await;
    let mut settings = daemon_settings(&fake, &pool).await;
    settings.schedule.blackout = vec![BlackoutRange {
        from: date(2026, 3, 10),
        to: date(2026, 3, 10),
    }];

    for (start, stop_after) in [
        (local(2026, 3, 6, 12, 0), local(2026, 3, 11, 12, 0)),
        (local(2026, 10, 30, 12, 0), local(2026, 11, 3, 12, 0)),
    ] {
        let (clock, stop) = FakeClock::new(start, stop_after);
        let daemon = Daemon::with_clock(settings.clone(), pool.clone(), clock.clone())
            .unwrap()
            .with_notifier(Notifier::disabled());
        let running = daemon.start(stop).await.unwrap();
        tokio::time::timeout(Duration::from_secs(120), running.wait())
            .await
            .expect("the daemon stops when the clock says so")
            .expect("the daemon stops cleanly");
        for t in clock.asked() {
            assert_eq!(t.format("%H:%M:%S").to_string(), "00:00:00", "woke at {t}");
        }
    }

    let rows = runs(&pool).await;
    let nights: Vec<NaiveDate> = rows.iter().map(|r| r.2).collect();
    assert_eq!(
        nights,
        vec![
            date(2026, 3, 7),
            date(2026, 3, 8),
            date(2026, 3, 9),
            date(2026, 3, 11),
            date(2026, 10, 31),
            date(2026, 11, 1),
            date(2026, 11, 2),
            date(2026, 11, 3),
        ],
        "{rows:?}"
    );
    assert!(
        rows.iter().all(|r| r.1 == "schedule" && r.3 == "succeeded"),
        "{rows:?}"
    );
    let text = logs.text();
    assert!(
        text.contains("scheduled run for night 2026-03-10 (2026-03-10 00:00 MDT) skipped: blackout 2026-03-10 to 2026-03-10"),
        "{text}"
    );
}
