//! `powerschool.max_count`, `count_tolerance_percent`,
//! `count_tolerance_records` and `max_page_bytes`: how much of a PowerSchool
//! answer is believed and read (see `AnswerLimits`).

use super::file::FilePowerSchool;
use super::settings::AnswerLimits;
use super::validate::whole;
use super::{invalid, ConfigError};

/// The largest `max_page_bytes` accepted: 1 GiB.
const MAX_PAGE_BYTES_LIMIT: i64 = 1 << 30;

pub(super) fn validate(ps: &FilePowerSchool) -> Result<AnswerLimits, ConfigError> {
    let d = AnswerLimits::default();
    let max_count = whole(
        "powerschool.max_count",
        ps.max_count,
        d.max_count as i64,
        1,
        1_000_000_000,
    )?;
    let key = "powerschool.count_tolerance_percent";
    let count_tolerance_percent = ps
        .count_tolerance_percent
        .unwrap_or(d.count_tolerance_percent);
    if !count_tolerance_percent.is_finite() || !(0.0..=50.0).contains(&count_tolerance_percent) {
        return Err(invalid(
            key,
            count_tolerance_percent,
            "allowed is a number from 0 to 50",
        ));
    }
    let count_tolerance_records = whole(
        "powerschool.count_tolerance_records",
        ps.count_tolerance_records,
        d.count_tolerance_records as i64,
        0,
        1_000_000,
    )?;
    let max_page_bytes = whole(
        "powerschool.max_page_bytes",
        ps.max_page_bytes,
        d.max_page_bytes as i64,
        1024,
        MAX_PAGE_BYTES_LIMIT,
    )?;
    let key = "powerschool.count_growth_factor";
    let count_growth_factor = ps.count_growth_factor.unwrap_or(d.count_growth_factor);
    if !count_growth_factor.is_finite()
        || !(count_growth_factor == 0.0 || (1.5..=1000.0).contains(&count_growth_factor))
    {
        return Err(invalid(
            key,
            count_growth_factor,
            "allowed is 0 (not judged) or a number from 1.5 to 1000",
        ));
    }
    Ok(AnswerLimits {
        count_growth_factor,
        max_count: max_count as u64,
        count_tolerance_percent,
        count_tolerance_records: count_tolerance_records as u64,
        max_page_bytes: max_page_bytes as usize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Settings, Sources};
    use std::collections::HashMap;
    use std::path::Path;

    fn load(file: Option<&Path>, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let mut vars: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        vars.insert("STUDENT_SYNC_POWERSCHOOL_CLIENT_SECRET".into(), "x".into());
        vars.insert(
            "STUDENT_SYNC_POWERSCHOOL_URL".into(),
            "https://ps.example.org".into(),
        );
        vars.insert("STUDENT_SYNC_POWERSCHOOL_CLIENT_ID".into(), "id".into());
        Settings::load(&Sources { file, env: vars })
    }

    #[test]
    fn the_example_file_documents_the_defaults_and_the_environment_overrides() {
        let example =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("config/student-sync.example.toml");
        let s = load(Some(&example), &[]).map_err(|e| e.to_string());
        assert_eq!(
            s.map(|s| s.powerschool.answer_limits),
            Ok(AnswerLimits::default())
        );
        let s = load(
            Some(&example),
            &[
                ("STUDENT_SYNC_POWERSCHOOL_MAX_COUNT", "1000"),
                ("STUDENT_SYNC_POWERSCHOOL_COUNT_TOLERANCE_PERCENT", "2.5"),
                ("STUDENT_SYNC_POWERSCHOOL_COUNT_TOLERANCE_RECORDS", "0"),
                ("STUDENT_SYNC_POWERSCHOOL_MAX_PAGE_BYTES", "2048"),
                ("STUDENT_SYNC_POWERSCHOOL_COUNT_GROWTH_FACTOR", "0"),
            ],
        )
        .map_err(|e| e.to_string());
        let want = AnswerLimits {
            max_count: 1000,
            count_tolerance_percent: 2.5,
            count_tolerance_records: 0,
            max_page_bytes: 2048,
            count_growth_factor: 0.0,
        };
        assert_eq!(s.map(|s| s.powerschool.answer_limits), Ok(want));
        let e = load(None, &[("STUDENT_SYNC_POWERSCHOOL_MAX_PAGE_BYTES", "lots")])
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert!(
            e.as_ref()
                .is_err_and(|e| e.contains("STUDENT_SYNC_POWERSCHOOL_MAX_PAGE_BYTES")),
            "{e:?}"
        );
    }

    #[test]
    fn defaults_and_refused_values() {
        let limits = validate(&FilePowerSchool::default()).unwrap_or_default();
        assert_eq!(limits, AnswerLimits::default());
        let refused = [
            (
                "powerschool.max_count",
                FilePowerSchool {
                    max_count: Some(0),
                    ..Default::default()
                },
            ),
            (
                "powerschool.count_tolerance_percent",
                FilePowerSchool {
                    count_tolerance_percent: Some(f64::NAN),
                    ..Default::default()
                },
            ),
            (
                "powerschool.count_tolerance_percent",
                FilePowerSchool {
                    count_tolerance_percent: Some(51.0),
                    ..Default::default()
                },
            ),
            (
                "powerschool.max_page_bytes",
                FilePowerSchool {
                    max_page_bytes: Some(100),
                    ..Default::default()
                },
            ),
            (
                "powerschool.count_growth_factor",
                FilePowerSchool {
                    count_growth_factor: Some(1.2),
                    ..Default::default()
                },
            ),
        ];
        for (key, file) in refused {
            match validate(&file) {
                Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key),
                other => panic!("{key}: expected a refusal, got {other:?}"),
            }
        }
    }
}
