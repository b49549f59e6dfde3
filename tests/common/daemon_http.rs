//! For the daemon's HTTP tests: a clock the test releases one fire at a
//! time, and small readers of `/healthz` and `/metrics`.
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use std::sync::{Arc, Mutex};
use student_sync::daemon::Clock;
use tokio::sync::Semaphore;

/// A clock that jumps to each asked fire time only when the test hands out
/// a permit, so the test decides when the one run happens.
#[derive(Clone)]
pub struct GateClock {
    pub now: Arc<Mutex<DateTime<Utc>>>,
    pub permits: Arc<Semaphore>,
}

impl GateClock {
    /// Noon on 5 March 2026 in Edmonton, with no permit handed out yet: the
    /// schedule fires only when the test says so.
    pub fn at_noon_on_a_school_day() -> GateClock {
        use chrono::TimeZone;
        let noon = chrono_tz::America::Edmonton
            .with_ymd_and_hms(2026, 3, 5, 12, 0, 0)
            .unwrap()
            .with_timezone(&Utc);
        GateClock {
            now: Arc::new(Mutex::new(noon)),
            permits: Arc::new(Semaphore::new(0)),
        }
    }
}

/// The settings of a daemon under test: the fake PowerSchool, the test's
/// database, `/healthz` and `/metrics` on a free loopback port.
pub async fn daemon_settings(
    fake: &student_sync::harness::fake_powerschool::RunningFake,
    pool: &sqlx::PgPool,
) -> student_sync::config::Settings {
    let mut settings = super::settings_for(fake);
    settings.database.url = url::Url::parse(&super::database_url(pool).await).unwrap();
    settings.daemon.listen = "127.0.0.1:0".parse().unwrap();
    settings
}

impl Clock for GateClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap()
    }

    fn sleep_until(&self, when: DateTime<Utc>) -> impl std::future::Future<Output = ()> + Send {
        let this = self.clone();
        async move {
            this.permits
                .acquire()
                .await
                .expect("semaphore open")
                .forget();
            *this.now.lock().unwrap() = when;
        }
    }
}

/// The value of the sample `name{labels…}` (every given label present).
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        if line.starts_with('#') {
            return None;
        }
        let (series, value) = line.rsplit_once(' ')?;
        let bare = series.split('{').next()?;
        if bare != name {
            return None;
        }
        if !labels
            .iter()
            .all(|(k, v)| series.contains(&format!("{k}=\"{v}\"")))
        {
            return None;
        }
        value.parse().ok()
    })
}

pub async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.expect("the listener answers");
    let code = r.status().as_u16();
    (code, r.text().await.unwrap())
}
