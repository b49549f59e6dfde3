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
