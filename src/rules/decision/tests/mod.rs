//! The decision table, case by case: hand-made districts in, the decision, its
//! reasons and the run report checked, one file per step of the table. The
//! districts several steps share are here.

use super::{decide, tier_under, Engine};
use crate::rules::test_facts::*;
use crate::rules::{
    AccessTier, ConnectionAction, ConnectionCase, DistrictFacts, FormFacts, GuardianLink, Limit,
    NewUser, Origin, Policy, RemovalPolicy, StudentFacts, UserFacts, UserRef,
};
use AccessTier::*;

const MEI: &str = "mei.lee@example.com";

/// The bundled example world (fixtures/worlds/00-…): one independent
/// student, one parent.
fn example_world() -> DistrictFacts {
    DistrictFacts {
        students: vec![independent_student(5001, "ava.lee@students.example.org")],
        contacts: vec![contact(5001, 801, MEI, true)],
        guardian_rows: vec![row(9001, 5001, "Mei.Lee@example.com")],
        users: vec![user(1, MEI)],
        connections: vec![connection(5001, 1, Full, Origin::Admin)],
        forms: vec![form(5001, 1)],
        policy: Policy::default(),
    }
}

/// A plain family: student 5001, decision-making contact, one account.
fn family() -> DistrictFacts {
    DistrictFacts {
        students: vec![student(5001)],
        contacts: vec![contact(5001, 801, MEI, true)],
        guardian_rows: vec![row(9001, 5001, MEI)],
        ..DistrictFacts::default()
    }
}

fn with_policy(mut facts: DistrictFacts, policy: RemovalPolicy) -> DistrictFacts {
    facts.policy.on_powerschool_removal = policy;
    facts
}

mod account_owner;
mod cases;
mod district;
mod link_validity;
mod verdicts;
