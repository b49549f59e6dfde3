//! The one place a verdict becomes words: every sentence of the rules, as
//! admins have always read them (the golden files of `tests/golden_text.rs`
//! hold them byte for byte). Nothing is rendered until something shows it.

use std::fmt::{self, Display, Formatter, Write};

use super::{ContactFlag, NotCaseC, PortalAccount, Reason, Who};
use crate::rules::ConnectionCase;

impl Display for Who {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Who::User { id, login } => write!(f, "user {id} ({login})"),
            Who::NewUser(email) => write!(f, "the new user {email}"),
            Who::ANewUser => f.write_str("a new user"),
        }
    }
}

impl Display for PortalAccount {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            PortalAccount::EarlierLink { guardian_id } => {
                write!(f, "guardian account {guardian_id}, linked by an earlier sync")
            }
            PortalAccount::ThisRun {
                guardian_id,
                student_dcid,
            } => write!(
                f,
                "guardian account {guardian_id}, which validly links them to student {student_dcid} this run"
            ),
        }
    }
}

/// `Contact 1, 2 of …`: the person ids, comma-separated.
struct PersonIds<'a>(&'a [ContactFlag]);

impl Display for PersonIds<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for (i, c) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}", c.person_id)?;
        }
        Ok(())
    }
}

/// `contact 1: isdecisionmaking = 1, …`
struct Flags<'a>(&'a [ContactFlag]);

impl Display for Flags<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for (i, c) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(
                f,
                "contact {}: isdecisionmaking = {}",
                c.person_id,
                u8::from(c.decision_making)
            )?;
        }
        Ok(())
    }
}

/// README decision 5 in words: the other accounts that link the same pair.
struct OtherLinks<'a>(&'a [i64]);

impl Display for OtherLinks<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return Ok(());
        }
        f.write_str(" Guardian accounts ")?;
        for (i, g) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{g}")?;
        }
        f.write_str(" also link them; the best tier among the links is kept.")
    }
}

/// `; this run links it to guardian account {g}`, or nothing.
struct LinkedNow(Option<i64>);

impl Display for LinkedNow {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(g) => write!(f, "; this run links it to guardian account {g}"),
            None => Ok(()),
        }
    }
}

/// `Case D (synced): `
fn case(f: &mut Formatter<'_>, case: ConnectionCase) -> fmt::Result {
    write!(f, "Case {} ({}): ", case.letter(), case.as_str())
}

fn shown(email: &Option<super::Email>) -> &str {
    email.as_deref().unwrap_or("no usable email")
}

impl Display for Reason {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        use Reason::*;
        match self {
            ParentPortalLink { guardian_id: gid, student_dcid: dcid } => write!(
                f,
                "The row of guardian account {gid} for student {dcid} is a Parent Portal link, not a Web Access Account."
            ),
            AccountLinked { guardian_id: gid, email, student_dcid: dcid } => write!(
                f,
                "Guardian account {gid} ({email}) is linked to student {dcid} in the guardian PowerQuery (an active Parent Portal account with Data Access)."
            ),
            ContactsHaveEmail { student_dcid: dcid, email, contacts } => write!(
                f,
                "Contact {} of student {dcid} has the email {email}.",
                PersonIds(contacts)
            ),
            DecisionMaking { student_dcid: dcid, email, contacts } => {
                let flags = Flags(contacts);
                if contacts.iter().all(|c| c.decision_making) {
                    write!(f, "Every contact of student {dcid} with the email {email} is decision-making ({flags}).")
                } else {
                    write!(f, "Not every contact of student {dcid} with the email {email} is decision-making ({flags}), so the tier is at most restricted.")
                }
            }
            NotIndependent { student_dcid: dcid } => write!(
                f,
                "Student {dcid} is not an independent student, so R5 does not limit the link."
            ),
            IndependentOwnEmail { student_dcid: dcid, email, org_email } => write!(
                f,
                "Student {dcid} is independent and {email} is the student's own {}.",
                if *org_email { "orgemail" } else { "personalemail" }
            ),
            IndependentNotOwnEmail { student_dcid: dcid, email, org_email, personal_email } => write!(
                f,
                "Student {dcid} is independent and {email} is neither the student's orgemail ({}) nor personalemail ({}), so the tier is at most read_only (a parent with a Release of Information).",
                org_email.as_deref().unwrap_or("none"),
                personal_email.as_deref().unwrap_or("none"),
            ),
            _ => self.fmt_step2(f),
        }
    }
}

impl Reason {
    fn fmt_step2(&self, f: &mut Formatter<'_>) -> fmt::Result {
        use Reason::*;
        match self {
            LinkedEarlier { user_id, login, guardian_id: gid, email } => {
                write!(f, "User {user_id} ({login}) was linked to guardian account {gid} by an earlier sync")?;
                if **login != **email {
                    write!(f, "; its login {login} differs from PowerSchool's {email} and is left as it is (SchoolEngage owns the login)")?;
                }
                f.write_char('.')
            }
            FormCreatorMatched { user_id: u, login, email, student_dcid: dcid, linked_now } => write!(
                f,
                "User {u} ({login}) is a verified user with the email {email} who created a form for student {dcid}{}.",
                LinkedNow(*linked_now)
            ),
            VerifiedEmailMatched { user_id: u, email, linked_now } => write!(
                f,
                "User {u} is the verified user with the email {email}{}.",
                LinkedNow(*linked_now)
            ),
            NewUserCreated { email, guardian_id } => write!(
                f,
                "No SchoolEngage user has the email {email}, so a new user is created with it, linked to guardian account {guardian_id}."
            ),
            UnverifiedOnly { user_id: u, email, guardian_id: gid, student_dcid: dcid } => write!(
                f,
                "User {u} has the email {email} but SchoolEngage has not verified it, so guardian account {gid} is not linked to that user and no connection to student {dcid} is made."
            ),
            _ => self.fmt_case(f),
        }
    }

    fn fmt_case(&self, f: &mut Formatter<'_>) -> fmt::Result {
        use Reason::*;
        match self {
            CaseSynced { who, student_dcid: dcid, guardian_id: gid, tier, others } => {
                case(f, ConnectionCase::Synced)?;
                write!(f, "the connection of student {dcid} and {who} exists and guardian account {gid} links them in PowerSchool, so its tier is {} from R4/R5.{}", tier.as_str(), OtherLinks(others))
            }
            CaseMatchedFormCreator { who, student_dcid: dcid, guardian_id: gid, tier, others } => {
                case(f, ConnectionCase::MatchedFormCreator)?;
                write!(f, "{who} created a form for student {dcid} and guardian account {gid} now links them, so the connection is created from the form creator's record with tier {}.{}", tier.as_str(), OtherLinks(others))
            }
            CaseCreated { who, student_dcid: dcid, guardian_id: gid, email, tier, others } => {
                case(f, ConnectionCase::Created)?;
                write!(f, "guardian account {gid} validly links student {dcid} and {email}, and no connection or form creator matched, so a connection for {who} is created with tier {}.{}", tier.as_str(), OtherLinks(others))
            }
            CaseAdminConnection { who, student_dcid: dcid, kept } => {
                case(f, ConnectionCase::SchoolengageOnly)?;
                write!(f, "a SchoolEngage administrator made the connection of student {dcid} and {who} and PowerSchool has no valid link for it, so it is kept with tier {}: SchoolEngage is the source of truth.", kept.as_str())
            }
            CaseFormConnection { who, student_dcid: dcid, missing, kept } => {
                case(f, ConnectionCase::SchoolengageOnly)?;
                write!(f, "the connection of student {dcid} and {who} was made from a form and PowerSchool has no valid link for it; it is not case C because ")?;
                match missing {
                    NotCaseC::NoForm => write!(f, "{who} has no form for student {dcid}")?,
                    NotCaseC::NoPortalAccount => write!(f, "{who} holds no Parent Portal account")?,
                }
                write!(f, ", so it is kept with tier {}.", kept.as_str())
            }
            CaseOrphaned { who, student_dcid: dcid, policy } => {
                case(f, ConnectionCase::SchoolengageOnly)?;
                write!(f, "an earlier sync created the connection of student {dcid} and {who} from PowerSchool and its link has gone, so it is orphaned from PowerSchool; on_powerschool_removal = {}.", policy.as_str())
            }
            CaseReturningParent { who, student_dcid: dcid, account, created } => {
                case(f, ConnectionCase::UnlinkedReturningParent)?;
                let outcome = if *created { "a connection is created" } else { "the connection is kept" };
                write!(f, "{who} created a form for student {dcid} and holds a Parent Portal account ({account}), but PowerSchool has no valid link to this student, so {outcome} with tier incomplete and the user is flagged incomplete until the link exists.")
            }
            Restricted { who, student_dcid: dcid, from, to } => write!(
                f,
                "on_powerschool_removal = restrict lowers the orphaned connection of student {dcid} and {who} from {} to {}.",
                from.as_str(),
                to.as_str()
            ),
            Revoked { who, student_dcid: dcid } => write!(
                f,
                "on_powerschool_removal = revoke removes the orphaned connection of student {dcid} and {who}."
            ),
            _ => self.fmt_no_link(f),
        }
    }

    fn fmt_no_link(&self, f: &mut Formatter<'_>) -> fmt::Result {
        use Reason::*;
        match self {
            WebAccessRow { guardian_id: gid, email, student_dcid: dcid } => write!(
                f,
                "The row of guardian account {gid} ({}) for student {dcid} is a link through a Web Access Account, which R1 ignores.",
                shown(email)
            ),
            RowNotInSyncSet { student_dcid: dcid, guardian_id: gid } => write!(
                f,
                "Student {dcid} is not in this run's sync set (not enrolled, or a scheduling-year student), so the row of guardian account {gid} is ignored."
            ),
            UnusableEmail { guardian_id: gid, raw, student_dcid: dcid } => write!(
                f,
                "Guardian account {gid} has no usable email ({raw:?}), so its link to student {dcid} cannot be checked against contacts or users."
            ),
            NoMatchingContact { student_dcid: dcid, email, guardian_id: gid } => write!(
                f,
                "No contact of student {dcid} has the email {}, so the link of guardian account {gid} is treated as absent from PowerSchool.",
                shown(email)
            ),
            LinkOfEarlierUser { guardian_id: gid, student_dcid: dcid, email, user_id: u, login } => write!(
                f,
                "Guardian account {gid} validly links student {dcid} with {}, but an earlier sync linked that account to user {u} ({login}), who gets the connection instead.",
                shown(email)
            ),
            LinkOfUser { guardian_id: gid, student_dcid: dcid, email, user_id: u, login } => write!(
                f,
                "Guardian account {gid} validly links student {dcid} with {}, and that link belongs to user {u} ({login}).",
                shown(email)
            ),
            LinkOfUnverifiedUser { guardian_id: gid, student_dcid: dcid, email, user_id: u } => write!(
                f,
                "Guardian account {gid} validly links student {dcid} with {}, but user {u} has not verified that email in SchoolEngage, so no connection is made.",
                shown(email)
            ),
            LinkOfNewUser { guardian_id: gid, student_dcid: dcid, email } => write!(
                f,
                "Guardian account {gid} validly links student {dcid} with {}, and that link belongs to the new user the run creates with that email.",
                shown(email)
            ),
            NoAccountLinks { student_dcid: dcid, email, guardian_id } => {
                write!(f, "No Parent Portal account in the guardian PowerQuery links student {dcid} to ")?;
                match (email, guardian_id) {
                    (Some(e), Some(g)) => write!(f, "the email {e} or to guardian account {g}")?,
                    (Some(e), None) => write!(f, "the email {e}")?,
                    (None, Some(g)) => write!(f, "guardian account {g}")?,
                    (None, None) => f.write_str("this user (no usable login email)")?,
                }
                f.write_char('.')
            }
            _ => self.fmt_explain(f),
        }
    }

    fn fmt_explain(&self, f: &mut Formatter<'_>) -> fmt::Result {
        use Reason::*;
        match self {
            MalformedEmail { given } => write!(
                f,
                "The email {given:?} is malformed or empty after normalising, so it matches no contact, account or user."
            ),
            StudentNotSynced { student_dcid: dcid, has_connection } => write!(
                f,
                "Student {dcid} is not in this run's sync set (not enrolled, or a scheduling-year student), so no rule is applied to it.{}",
                if *has_connection { " Its existing connection with this user is left untouched." } else { "" }
            ),
            NoUserWithEmail { email } => write!(
                f,
                "No SchoolEngage user has the email {email}, and no valid PowerSchool link creates one."
            ),
            FormCreatorOnly { user_id, student_dcid: dcid } => write!(
                f,
                "form_creator_only: user {user_id} created a form for student {dcid} but holds no Parent Portal account, so nothing changes (registration handles a new family)."
            ),
            Prose { detail, .. } => f.write_str(detail),
            // Every other variant is rendered by an earlier step.
            _ => Ok(()),
        }
    }
}
