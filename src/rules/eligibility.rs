//! Step 4 of access-rules.md and README decision 13–15: which students are in a
//! run's sync set, which are independent, and what a student logs in with.
//! Kept apart from the decision table because the sync applies these while
//! building the facts, before any access is decided.

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use strum::{AsRefStr, Display, EnumString, IntoStaticStr, VariantNames};

use super::email::normalise_optional;

/// Whether a student from the students query belongs to this run's sync set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Eligibility {
    Included,
    /// Pre-registered for next school year while `include_scheduling_year` is off.
    SchedulingYearExcluded,
    /// `enroll_status > 0`: transferred out, graduated, inactive, ….
    NotEnrolled,
}

/// The pre-registration value of `students.enroll_status` in PowerSchool.
const PRE_REGISTERED: i64 = -1;

/// The district's school year starts on 1 August (world-format.md).
const SCHOOL_YEAR_START_MONTH: u32 = 8;

pub fn sync_set_status(
    enroll_status: i64,
    entry_date: Option<NaiveDate>,
    today: NaiveDate,
    include_scheduling_year: bool,
) -> Eligibility {
    if enroll_status > 0 {
        return Eligibility::NotEnrolled;
    }
    let scheduling_year = enroll_status == PRE_REGISTERED
        && entry_date.is_some_and(|entry| entry >= next_school_year_start(today));
    if scheduling_year && !include_scheduling_year {
        Eligibility::SchedulingYearExcluded
    } else {
        Eligibility::Included
    }
}

/// The first 1 August strictly after `today`: on 1 August itself the new
/// year has already begun, so its students are current, not scheduling-year.
pub fn next_school_year_start(today: NaiveDate) -> NaiveDate {
    let this_year = school_year_start_in(today.year());
    if today < this_year {
        this_year
    } else {
        school_year_start_in(today.year() + 1)
    }
}

/// 1 August of `year`; past the last year chrono represents, the last date
/// it represents (no entry date comes after it).
fn school_year_start_in(year: i32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, SCHOOL_YEAR_START_MONTH, 1).unwrap_or(NaiveDate::MAX)
}

/// The enrolment type Alberta's PowerSchool uses for an independent student:
/// the default of `powerschool.fields.independent_enrolment_type`.
pub const INDEPENDENT_ENROLMENT_TYPE: &str = "121";

/// The three enrolment types (`s_ab_stu_x.enrlytype1..3` by default): any of
/// them being the district's independent value (`independent`, e.g. 121)
/// makes the student independent.
pub fn is_independent(types: &[Option<String>], independent: &str) -> bool {
    types
        .iter()
        .flatten()
        .any(|t| t.trim() == independent.trim())
}

/// Which student field the district uses as the student's own login.
/// Spelled as the setting `sync.student_login_field` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[derive(Serialize, Deserialize)]
#[derive(AsRefStr, IntoStaticStr, EnumString, Display, VariantNames)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum LoginField {
    #[default]
    OrgEmail,
    PersonalEmail,
}

/// The student's login, normalised, or `None` when the configured field holds
/// no well-formed email (the student is still synced, and listed in the report).
pub fn student_login(
    org_email: Option<&str>,
    personal_email: Option<&str>,
    field: LoginField,
) -> Option<String> {
    match field {
        LoginField::OrgEmail => normalise_optional(org_email),
        LoginField::PersonalEmail => normalise_optional(personal_email),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn next_school_year_start_is_strictly_after_today() {
        assert_eq!(next_school_year_start(date(2026, 11, 23)), date(2027, 8, 1));
        assert_eq!(next_school_year_start(date(2027, 7, 31)), date(2027, 8, 1));
        assert_eq!(next_school_year_start(date(2027, 8, 1)), date(2028, 8, 1));
        assert_eq!(next_school_year_start(date(2027, 1, 1)), date(2027, 8, 1));
        assert_eq!(next_school_year_start(date(2027, 12, 31)), date(2028, 8, 1));
    }

    #[test]
    fn enrolled_students_are_included() {
        let today = date(2026, 11, 23);
        assert_eq!(
            sync_set_status(0, Some(date(2026, 8, 28)), today, false),
            Eligibility::Included
        );
        // An active student whose entry date is in the future is not pre-registered.
        assert_eq!(
            sync_set_status(0, Some(date(2027, 9, 1)), today, false),
            Eligibility::Included
        );
    }

    #[test]
    fn positive_enroll_status_is_not_enrolled() {
        let today = date(2026, 11, 23);
        for status in [1, 2, 3, 4] {
            assert_eq!(
                sync_set_status(status, None, today, true),
                Eligibility::NotEnrolled
            );
        }
    }

    #[test]
    fn pre_registered_for_next_year_is_left_out_unless_setting_on() {
        let today = date(2026, 11, 23);
        let next_year = Some(date(2027, 8, 1));
        assert_eq!(
            sync_set_status(-1, next_year, today, false),
            Eligibility::SchedulingYearExcluded
        );
        assert_eq!(
            sync_set_status(-1, next_year, today, true),
            Eligibility::Included
        );
        // Entering before the next 1 August: this year's student.
        assert_eq!(
            sync_set_status(-1, Some(date(2027, 7, 31)), today, false),
            Eligibility::Included
        );
        assert_eq!(
            sync_set_status(-1, None, today, false),
            Eligibility::Included
        );
    }

    #[test]
    fn on_first_of_august_that_day_is_this_year() {
        let today = date(2027, 8, 1);
        assert_eq!(
            sync_set_status(-1, Some(date(2027, 8, 1)), today, false),
            Eligibility::Included
        );
        assert_eq!(
            sync_set_status(-1, Some(date(2028, 8, 1)), today, false),
            Eligibility::SchedulingYearExcluded
        );
    }

    #[test]
    fn independent_when_any_enrolment_type_is_121() {
        assert!(is_independent(
            &[None, None, Some("121".into())],
            INDEPENDENT_ENROLMENT_TYPE
        ));
        assert!(is_independent(
            &[Some(" 121 ".into()), None, None],
            INDEPENDENT_ENROLMENT_TYPE
        ));
        assert!(!is_independent(
            &[None, Some("12".into()), Some("1210".into())],
            INDEPENDENT_ENROLMENT_TYPE
        ));
        assert!(!is_independent(
            &[None, None, None],
            INDEPENDENT_ENROLMENT_TYPE
        ));
        assert!(!is_independent(&[], INDEPENDENT_ENROLMENT_TYPE));
        // A district whose independent value is another one: judged by it.
        assert!(is_independent(&[None, Some("7".into()), None], "7"));
        assert!(!is_independent(&[None, Some("121".into()), None], "7"));
    }

    #[test]
    fn student_login_uses_the_configured_field_and_needs_a_good_email() {
        let org = Some(" Ava.Lee@Students.Example.org ");
        let personal = Some("ava@home.example");
        assert_eq!(
            student_login(org, personal, LoginField::OrgEmail),
            Some("ava.lee@students.example.org".into())
        );
        assert_eq!(
            student_login(org, personal, LoginField::PersonalEmail),
            Some("ava@home.example".into())
        );
        assert_eq!(student_login(None, personal, LoginField::OrgEmail), None);
        assert_eq!(
            student_login(Some("not an email"), personal, LoginField::OrgEmail),
            None
        );
        assert_eq!(LoginField::default(), LoginField::OrgEmail);
    }
}
