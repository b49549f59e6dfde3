//! Rendering an [`Explanation`] as text for humans at a terminal: the answer
//! first, then one section per kind of record the rules looked at, one fact a
//! line. Only words and layout here; every fact was gathered before.

use super::{Explanation, UserSummary};
use crate::rules::{Limit, UserRef};

/// The text being written, a line at a time.
struct Lines(String);

impl Lines {
    fn line(&mut self, text: impl AsRef<str>) {
        self.0.push_str(text.as_ref());
        self.0.push('\n');
    }

    /// An empty line, then a section's heading.
    fn section(&mut self, heading: impl AsRef<str>) {
        self.line("");
        self.line(heading);
    }
}

impl Explanation {
    /// For humans at a terminal: headings, one fact per line.
    pub fn to_text(&self) -> String {
        let mut out = Lines(String::new());
        self.render_answer(&mut out);
        self.render_student(&mut out);
        self.render_guardian_rows(&mut out);
        self.render_contacts(&mut out);
        self.render_user(&mut out);
        self.render_stored_connection(&mut out);
        self.render_decision(&mut out);
        self.render_rules(&mut out);
        self.render_allows(&mut out);
        out.0
    }

    fn render_answer(&self, out: &mut Lines) {
        let shown = self
            .email
            .clone()
            .unwrap_or_else(|| format!("{:?}", self.email_given));
        out.line(format!("Does {shown} see student {}?", self.student_dcid));
        out.line(format!(
            "Answer: {} - {}",
            if self.sees_student { "YES" } else { "NO" },
            self.summary
        ));
        if !self.reasons.is_empty() {
            out.section("Why not");
            for reason in &self.reasons {
                out.line(format!("  - {reason}"));
            }
        }
    }

    fn render_student(&self, out: &mut Lines) {
        out.section(format!("Student {}", self.student_dcid));
        let Some(s) = &self.student else {
            out.line("  in the sync set: no");
            return;
        };
        out.line("  in the sync set: yes");
        out.line(format!("  independent: {}", yes_no(s.independent)));
        out.line(format!(
            "  orgemail: {} (is this email: {})",
            or_none(&s.org_email),
            yes_no(s.email_is_org_email)
        ));
        out.line(format!(
            "  personalemail: {} (is this email: {})",
            or_none(&s.personal_email),
            yes_no(s.email_is_personal_email)
        ));
    }

    fn render_guardian_rows(&self, out: &mut Lines) {
        out.section(format!(
            "Guardian PowerQuery rows of student {}",
            self.student_dcid
        ));
        if self.guardian_rows.is_empty() {
            out.line("  none");
        }
        for row in &self.guardian_rows {
            out.line(format!(
                "  - guardian account {}: email {}{}{}; {}",
                row.guardian_id,
                or_none(&row.email),
                this_email(row.has_this_email),
                if row.web_access_account {
                    ", Web Access Account"
                } else {
                    ""
                },
                row.outcome
            ));
        }
    }

    fn render_contacts(&self, out: &mut Lines) {
        out.section(format!("Contacts of student {}", self.student_dcid));
        if self.contacts.is_empty() {
            out.line("  none");
        }
        for contact in &self.contacts {
            out.line(format!(
                "  - contact {}: email {}{}; decision-making: {}",
                contact.person_id,
                or_none(&contact.email),
                this_email(contact.has_this_email),
                yes_no(contact.is_decision_making)
            ));
        }
    }

    fn render_user(&self, out: &mut Lines) {
        out.section("SchoolEngage user");
        match &self.user {
            None => out.line("  none with this email"),
            Some(u) => self.render_user_facts(u, out),
        }
    }

    fn render_user_facts(&self, u: &UserSummary, out: &mut Lines) {
        match u.user {
            UserRef::Existing(id) => {
                out.line(format!("  user {id}: {}", u.email));
                out.line(format!("  email verified: {}", yes_no(u.email_verified)));
            }
            UserRef::New(_) => out.line(format!(
                "  no user yet; the rules would create one: {}",
                u.email
            )),
        }
        out.line(format!(
            "  linked guardian account: {}",
            or_none_id(u.powerschool_guardian_id)
        ));
        if let (Some(g), UserRef::Existing(_)) = (u.linked_this_run, u.user) {
            out.line(format!("  the rules link it to guardian account: {g}"));
        }
        out.line(format!(
            "  Parent Portal account: {}",
            or_none(&u.parent_portal_account)
        ));
        out.line(format!(
            "  incomplete: {} now, {} by the rules",
            yes_no(u.incomplete_before),
            yes_no(u.incomplete_after)
        ));
        out.line(format!(
            "  forms created for student {}: {}",
            self.student_dcid, self.forms_by_user_for_student
        ));
    }

    fn render_stored_connection(&self, out: &mut Lines) {
        out.section("Connection as stored now");
        let Some(c) = &self.existing_connection else {
            out.line("  none");
            return;
        };
        out.line(format!("  tier: {}", c.tier.as_str()));
        out.line(format!("  origin: {}", c.origin.as_str()));
        out.line(format!(
            "  case: {}",
            c.case.map_or("none", |case| case.as_str())
        ));
        out.line(format!("  limits: {}", join_limits(&c.limits)));
    }

    fn render_decision(&self, out: &mut Lines) {
        out.section("What the rules decide from the PowerSchool data last synced");
        let Some(d) = &self.decision else {
            out.line("  no connection");
            return;
        };
        out.line(format!("  action: {}", d.action.as_str()));
        out.line(format!("  case: {} ({})", d.case_letter, d.case.as_str()));
        out.line(format!("  tier: {}", d.tier.as_str()));
        out.line(format!("  limits: {}", join_limits(&d.limits)));
        out.line(format!(
            "  backed by guardian account: {}",
            or_none_id(d.guardian_id)
        ));
        out.line(format!(
            "  present in PowerSchool: {}",
            yes_no(d.present_in_powerschool)
        ));
        out.line(format!(
            "  orphaned from PowerSchool: {}",
            yes_no(d.orphaned)
        ));
    }

    fn render_rules(&self, out: &mut Lines) {
        out.section("Rules");
        for v in &self.verdicts {
            out.line(format!(
                "  {} {}: {}",
                v.rule,
                if v.passed { "passed" } else { "failed" },
                v.reason
            ));
        }
    }

    fn render_allows(&self, out: &mut Lines) {
        let Some(tier) = self.tier else {
            return;
        };
        out.section(format!("What tier {} allows", tier.as_str()));
        for text in &self.allows_text {
            out.line(format!("  {text}"));
        }
    }
}

fn yes_no(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "no"
    }
}

fn or_none(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("none")
}

fn or_none_id(id: Option<i64>) -> String {
    id.map_or("none".to_string(), |g| g.to_string())
}

fn this_email(has_it: bool) -> &'static str {
    if has_it {
        " (this email)"
    } else {
        ""
    }
}

fn join_limits(limits: &[Limit]) -> String {
    if limits.is_empty() {
        "none".to_string()
    } else {
        limits
            .iter()
            .map(|l| l.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}
