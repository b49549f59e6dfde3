//! For the PowerSchool client's tests: client settings that point at any
//! server (the fake's credentials, tiny backoffs), a loopback address on a
//! free port, logs in the test's captured output, the fake PowerSchool
//! started on such an address, and a guardian account with an email of its
//! own.
#![allow(dead_code)]

use super::records::account;
use std::net::SocketAddr;
use std::time::Duration;
use student_sync::config::{GuardianColumns, PowerSchoolSettings, Secret};
use student_sync::harness::fake_powerschool::{spawn, FakeCredentials, Faults, RunningFake};
use student_sync::harness::world::{PowerSchoolSide, WorldGuardianAccount};

/// Client settings for the server at `url`, asking `page_size` records a
/// page, with the fake's credentials and backoffs of milliseconds.
pub fn settings(url: &str, page_size: u32) -> PowerSchoolSettings {
    let creds = FakeCredentials::default();
    PowerSchoolSettings {
        url: url.parse().unwrap(),
        client_id: creds.client_id,
        client_secret: Secret::new(creds.client_secret),
        page_size,
        school_concurrency: 3,
        max_requests_in_flight: 24,
        max_attempts: 4,
        backoff_initial: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
        request_timeout: Duration::from_secs(10),
        token_refresh_margin: Duration::from_secs(60),
        fields: Default::default(),
        throttle_max_wait: Duration::from_secs(5),
        answer_limits: Default::default(),
        guardian_columns: GuardianColumns::default(),
    }
}

/// A loopback address on whatever port is free.
pub fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Logs go to the test's captured output, shown when a test fails.
pub fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "student_sync=info".into()),
        )
        .with_test_writer()
        .try_init();
}

/// The fake PowerSchool serving `world` with `faults` on a free loopback
/// port, its logs in the test's captured output.
pub async fn fake(world: PowerSchoolSide, faults: Faults) -> RunningFake {
    logs();
    spawn(world, FakeCredentials::default(), faults, any_port())
        .await
        .expect("the fake PowerSchool starts")
}

/// Guardian account `guardianid` of student `dcid`, emailed at
/// g{guardianid}@example.com, through Web Access when `web`.
pub fn guardian(guardianid: i64, dcid: i64, web: bool) -> WorldGuardianAccount {
    account(guardianid, dcid, &format!("g{guardianid}@example.com"), web)
}
