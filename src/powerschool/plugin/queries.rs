//! The plugin's four PowerQueries, written from the district's fields: each
//! query's name, arguments, output columns and SQL, and the
//! `named_queries.xml` they are shipped in. The output column names are the
//! client's contract (docs/powerschool.md) and never change; only the source
//! columns of the district's fields do. Every column in the SQL is written
//! `table.column` with the table's own name (derived tables excepted), so the
//! access request can be read off the SQL (`access`).

use super::xml_escape;
use crate::config::{PowerSchoolFields, TableColumn};
use crate::powerschool::{CONTACTS_QUERY, INDEPENDENT_QUERY, STUDENTS_QUERY};
use std::collections::BTreeSet;

/// The schools query's name (no arguments; `school_number`, `name`).
pub const SCHOOLS_QUERY: &str = "org.studentsync.sync.schools.list";

/// One optional argument of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryArg {
    pub name: String,
    /// The column it filters, as `<arg column=…>` names it.
    pub column: TableColumn,
    pub description: String,
}

/// One output column: where it comes from and the name the client reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputColumn {
    pub source: TableColumn,
    pub name: String,
}

/// One PowerQuery as the plugin defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedQuery {
    pub name: String,
    /// PowerSchool's `coreTable`: the table a record is about.
    pub core_table: String,
    pub description: String,
    pub args: Vec<QueryArg>,
    pub columns: Vec<OutputColumn>,
    pub sql: String,
}

fn out(table: &str, column: &str, name: &str) -> OutputColumn {
    OutputColumn {
        source: TableColumn::new(table, column),
        name: name.to_string(),
    }
}

fn out_of(source: &TableColumn, name: &str) -> OutputColumn {
    OutputColumn {
        source: source.clone(),
        name: name.to_string(),
    }
}

fn school_arg() -> QueryArg {
    QueryArg {
        name: "school_number".into(),
        column: TableColumn::new("STUDENTS", "SCHOOLID"),
        description: "the school's school_number; -1 or absent: every school".into(),
    }
}

fn student_arg() -> QueryArg {
    QueryArg {
        name: "students_dcid".into(),
        column: TableColumn::new("STUDENTS", "DCID"),
        description: "one student's students.dcid; -1 or absent: every student".into(),
    }
}

/// `table.column` as the SQL spells it.
fn sql(c: &TableColumn) -> String {
    format!(
        "{}.{}",
        c.table.to_ascii_lowercase(),
        c.column.to_ascii_lowercase()
    )
}

/// `LEFT JOIN t ON t.{ext_key} = base.{base_key}` for each extension table
/// among `columns` (those not on `base` itself), once each, in the order named.
fn extension_joins(
    columns: &[&TableColumn],
    (base, base_key): (&str, &str),
    ext_key: &str,
    indent: &str,
) -> String {
    let mut seen = BTreeSet::new();
    let mut joins = String::new();
    for c in columns {
        if c.table == base || !seen.insert(c.table.clone()) {
            continue;
        }
        let t = c.table.to_ascii_lowercase();
        let (b, bk) = (base.to_ascii_lowercase(), base_key.to_ascii_lowercase());
        let k = ext_key.to_ascii_lowercase();
        joins.push_str(&format!("{indent}LEFT JOIN {t} ON {t}.{k} = {b}.{bk}\n"));
    }
    joins
}

/// A select list: `expr AS name` lines, aligned.
fn select_list(items: &[(String, &str)], indent: &str) -> String {
    let width = items.iter().map(|(e, _)| e.len()).max().unwrap_or(0);
    items
        .iter()
        .map(|(expr, name)| format!("{indent}{expr:<width$} AS {name}"))
        .collect::<Vec<_>>()
        .join(",\n")
}

const SCHOOL_FILTER: &str =
    "        AND (NVL(:school_number, -1) = -1 OR students.schoolid = :school_number)\n";
const STUDENT_FILTER: &str =
    "        AND (NVL(:students_dcid, -1) = -1 OR students.dcid = :students_dcid)\n";

/// The four queries for these fields, in the order they are shipped.
pub fn queries(fields: &PowerSchoolFields) -> Vec<NamedQuery> {
    vec![
        schools(),
        enrolled(fields),
        independent(fields),
        contacts(fields),
    ]
}

fn schools() -> NamedQuery {
    let select = select_list(
        &[
            ("schools.school_number".into(), "school_number"),
            ("schools.name".into(), "name"),
        ],
        "        ",
    );
    NamedQuery {
        name: SCHOOLS_QUERY.into(),
        core_table: "schools".into(),
        description: "student-sync: the district's schools, their school_number and name.".into(),
        args: vec![],
        columns: vec![
            out("SCHOOLS", "SCHOOL_NUMBER", "school_number"),
            out("SCHOOLS", "NAME", "name"),
        ],
        sql: format!(
            "      SELECT\n{select}\n      FROM schools\n      ORDER BY schools.school_number\n"
        ),
    }
}

fn enrolled(f: &PowerSchoolFields) -> NamedQuery {
    let base = [
        "dcid",
        "id",
        "student_number",
        "first_name",
        "last_name",
        "grade_level",
        "schoolid",
        "enroll_status",
        "entrydate",
    ];
    let mut columns: Vec<OutputColumn> = base
        .iter()
        .map(|c| out("STUDENTS", &c.to_ascii_uppercase(), c))
        .collect();
    columns.push(out_of(&f.student_org_email, "orgemail"));
    columns.push(out_of(&f.student_personal_email, "personalemail"));
    let items: Vec<(String, &str)> = columns
        .iter()
        .map(|c| (sql(&c.source), c.name.as_str()))
        .collect();
    let joins = extension_joins(
        &[&f.student_org_email, &f.student_personal_email],
        ("STUDENTS", "DCID"),
        "STUDENTSDCID",
        "      ",
    );
    NamedQuery {
        name: STUDENTS_QUERY.into(),
        core_table: "students".into(),
        description: "student-sync: a school's students with enroll_status <= 0 (active and \
                      pre-registered), with the students' own email addresses."
            .into(),
        args: vec![school_arg(), student_arg()],
        sql: format!(
            "      SELECT\n{}\n      FROM students\n{joins}      WHERE students.enroll_status <= 0\n\
             {SCHOOL_FILTER}{STUDENT_FILTER}      ORDER BY students.dcid\n",
            select_list(&items, "        ")
        ),
        columns,
    }
}

fn independent(f: &PowerSchoolFields) -> NamedQuery {
    let [t1, t2, t3] = &f.enrolment_types;
    let columns = vec![
        out("STUDENTS", "DCID", "dcid"),
        out_of(t1, "enrlytype1"),
        out_of(t2, "enrlytype2"),
        out_of(t3, "enrlytype3"),
        out_of(&f.student_org_email, "orgemail"),
        out_of(&f.student_personal_email, "personalemail"),
    ];
    let items: Vec<(String, &str)> = columns
        .iter()
        .map(|c| (sql(&c.source), c.name.as_str()))
        .collect();
    let joins = extension_joins(
        &[t1, t2, t3, &f.student_org_email, &f.student_personal_email],
        ("STUDENTS", "DCID"),
        "STUDENTSDCID",
        "      ",
    );
    let value = &f.independent_enrolment_type;
    let types = [t1, t2, t3]
        .iter()
        .map(|t| format!("TRIM({}) = '{value}'", sql(t)))
        .collect::<Vec<_>>()
        .join("\n          OR ");
    NamedQuery {
        name: INDEPENDENT_QUERY.into(),
        core_table: "students".into(),
        description: format!(
            "student-sync: students with enroll_status <= 0 whose enrolment type 1, 2 or 3 is \
             {value} (independent students), district-wide."
        ),
        args: vec![student_arg()],
        sql: format!(
            "      SELECT\n{}\n      FROM students\n{joins}      WHERE students.enroll_status <= 0\n\
             \x20       AND ({types})\n{STUDENT_FILTER}      ORDER BY students.dcid\n",
            select_list(&items, "        ")
        ),
        columns,
    }
}

fn contacts(f: &PowerSchoolFields) -> NamedQuery {
    let dm = &f.decision_making;
    let columns = vec![
        out("STUDENTS", "DCID", "studentsdcid"),
        out("PERSON", "ID", "personid"),
        out("PERSON", "FIRSTNAME", "firstname"),
        out("PERSON", "LASTNAME", "lastname"),
        out("EMAILADDRESS", "EMAILADDRESS", "email"),
        out_of(dm, "isdecisionmaking"),
    ];
    let select = select_list(
        &[
            ("students.dcid".into(), "studentsdcid"),
            ("person.id".into(), "personid"),
            ("person.firstname".into(), "firstname"),
            ("person.lastname".into(), "lastname"),
            ("pe.emailaddress".into(), "email"),
            ("rel.isdecisionmaking".into(), "isdecisionmaking"),
        ],
        "        ",
    );
    let dm_join = extension_joins(
        &[dm],
        ("STUDENTCONTACTDETAIL", "STUDENTCONTACTDETAILID"),
        "STUDENTCONTACTDETAILID",
        "        ",
    );
    let dm_sql = sql(dm);
    NamedQuery {
        name: CONTACTS_QUERY.into(),
        core_table: "students".into(),
        description: "student-sync: one row per (student, contact person) for a school's \
                      students with enroll_status <= 0: the person's current primary email and \
                      whether the contact is decision-making."
            .into(),
        args: vec![school_arg(), student_arg()],
        sql: format!(
            "      SELECT
{select}
      FROM students
      JOIN (
        /* one row per (student, person): a contact counts while at least one
           of its relationship details is active, and is decision-making when
           any active detail says so */
        SELECT
          studentcontactassoc.studentdcid,
          studentcontactassoc.personid,
          MAX(NVL({dm_sql}, 0)) AS isdecisionmaking
        FROM studentcontactassoc
        JOIN studentcontactdetail
          ON studentcontactdetail.studentcontactassocid = studentcontactassoc.studentcontactassocid
         AND studentcontactdetail.isactive = 1
{dm_join}        GROUP BY studentcontactassoc.studentdcid, studentcontactassoc.personid
      ) rel ON rel.studentdcid = students.dcid
      JOIN person ON person.id = rel.personid
      LEFT JOIN (
        /* the person's current primary email; if several are flagged
           primary, the one first in priority order */
        SELECT
          personemailaddressassoc.personid,
          emailaddress.emailaddress,
          ROW_NUMBER() OVER (
            PARTITION BY personemailaddressassoc.personid
            ORDER BY personemailaddressassoc.emailaddresspriorityorder,
                     personemailaddressassoc.personemailaddressassocid
          ) AS pick
        FROM personemailaddressassoc
        JOIN emailaddress ON emailaddress.emailaddressid = personemailaddressassoc.emailaddressid
        WHERE personemailaddressassoc.isprimaryemailaddress = 1
      ) pe ON pe.personid = person.id AND pe.pick = 1
      WHERE students.enroll_status <= 0
        AND NVL(person.isactive, 1) = 1
{SCHOOL_FILTER}{STUDENT_FILTER}      ORDER BY students.dcid, person.id
"
        ),
        columns,
    }
}

const NAMED_QUERIES_HEADER: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!--
  The four custom PowerQueries student-sync reads (docs/powerschool.md,
  "The queries"). Built by `student-sync plugin build` from the settings in
  [powerschool.fields]; do not edit by hand: change the settings and build
  again. Names and output column names are the contract with the client.

  Optional arguments: school_number and students_dcid narrow a query; when the
  caller leaves one out it takes its default, -1, and NVL(:arg, -1) = -1 also
  covers a server that binds a missing argument as NULL. -1 is never a real
  school number (the district office is 0) nor a students.dcid, so either way a
  missing argument means "no filter". student-sync always sends school_number
  for the per-school queries; students_dcid is for a spot sync of one student.

  Every query orders by its key so that paging (page/pagesize) is stable.
-->
<queries>
"#;

/// `queries_root/student_sync.named_queries.xml`.
pub fn named_queries_xml(queries: &[NamedQuery]) -> String {
    let mut xml = NAMED_QUERIES_HEADER.to_string();
    for q in queries {
        xml.push_str(&query_xml(q));
    }
    xml.push_str("\n</queries>\n");
    xml
}

fn query_xml(q: &NamedQuery) -> String {
    let mut x = format!(
        "\n  <query name=\"{}\" coreTable=\"{}\" flattened=\"true\">\n    <description>{}</description>\n",
        xml_escape(&q.name),
        xml_escape(&q.core_table),
        xml_escape(&q.description)
    );
    if q.args.is_empty() {
        x.push_str("    <args/>\n");
    } else {
        x.push_str("    <args>\n");
        for a in &q.args {
            x.push_str(&format!(
                "      <arg name=\"{}\" column=\"{}\" type=\"primitive\" required=\"false\" default=\"-1\"\n           description=\"{}\"/>\n",
                xml_escape(&a.name),
                a.column,
                xml_escape(&a.description)
            ));
        }
        x.push_str("    </args>\n");
    }
    x.push_str("    <columns>\n");
    for c in &q.columns {
        x.push_str(&format!(
            "      <column column=\"{}\">{}</column>\n",
            c.source,
            xml_escape(&c.name)
        ));
    }
    x.push_str(&format!(
        "    </columns>\n    <sql><![CDATA[\n{}    ]]></sql>\n  </query>\n",
        q.sql
    ));
    x
}
