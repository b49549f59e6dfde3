//! Just enough reading of the plugin's own SQL for the offline checks and the
//! access request: words (`students.dcid` is one word), bind arguments
//! (`:school_number`), punctuation; string literals and comments skipped.
//! It reads the SQL this module writes, not any SQL.

use crate::config::TableColumn;
use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Token {
    /// An identifier or keyword, possibly qualified (`students.dcid`).
    Word(String),
    /// `:name`
    Bind(String),
    /// Any other character that is not space.
    Punct(char),
    /// `'…'`
    Text,
}

pub(super) fn tokens(sql: &str) -> Vec<Token> {
    let word_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$' || c == '#';
    let mut chars = sql.chars().peekable();
    let mut out = Vec::new();
    while let Some(c) = chars.next() {
        let next = chars.peek().copied();
        if c.is_whitespace() {
        } else if c == '/' && next == Some('*') {
            chars.next();
            let mut previous = ' ';
            for c in chars.by_ref() {
                if previous == '*' && c == '/' {
                    break;
                }
                previous = c;
            }
        } else if c == '-' && next == Some('-') {
            for c in chars.by_ref() {
                if c == '\n' {
                    break;
                }
            }
        } else if c == '\'' {
            for c in chars.by_ref() {
                if c == '\'' {
                    break;
                }
            }
            out.push(Token::Text);
        } else if c == ':' && next.is_some_and(|n| n.is_ascii_alphabetic()) {
            let mut name = String::new();
            while let Some(c) = chars.next_if(|&c| word_char(c)) {
                name.push(c);
            }
            out.push(Token::Bind(name));
        } else if word_char(c) {
            let mut word = c.to_string();
            while let Some(c) = chars.next_if(|&c| word_char(c) || c == '.') {
                word.push(c);
            }
            out.push(Token::Word(word));
        } else {
            out.push(Token::Punct(c));
        }
    }
    out
}

fn is_keyword(token: &Token, keyword: &str) -> bool {
    matches!(token, Token::Word(w) if w.eq_ignore_ascii_case(keyword))
}

/// The tables named after FROM or JOIN (not derived tables), upper case.
pub(super) fn tables(tokens: &[Token]) -> BTreeSet<String> {
    tokens
        .iter()
        .zip(tokens.iter().skip(1))
        .filter(|(keyword, _)| is_keyword(keyword, "FROM") || is_keyword(keyword, "JOIN"))
        .filter_map(|(_, table)| match table {
            Token::Word(t) if !t.contains('.') => Some(t.to_ascii_uppercase()),
            _ => None,
        })
        .collect()
}

/// Every `table.column` the SQL reads from a real table (not from a derived
/// table's alias).
pub(super) fn columns_read(sql: &str) -> BTreeSet<TableColumn> {
    let tokens = tokens(sql);
    let tables = tables(&tokens);
    tokens
        .iter()
        .filter_map(|t| match t {
            Token::Word(w) => w.split_once('.'),
            _ => None,
        })
        .filter(|(table, _)| tables.contains(&table.to_ascii_uppercase()))
        .map(|(table, column)| TableColumn::new(table, column))
        .collect()
}

/// The bind arguments the SQL uses, in order of first use.
pub(super) fn binds(sql: &str) -> Vec<String> {
    let mut seen = Vec::new();
    for t in tokens(sql) {
        if let Token::Bind(name) = t {
            if !seen.contains(&name) {
                seen.push(name);
            }
        }
    }
    seen
}

/// The output names of the outermost SELECT, in order: each item's `AS`
/// alias, or its column name when it has none.
pub(super) fn select_names(sql: &str) -> Vec<String> {
    let tokens = tokens(sql);
    let Some(start) = tokens.iter().position(|t| is_keyword(t, "SELECT")) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    let mut item: Vec<&Token> = Vec::new();
    let mut depth = 0usize;
    for t in tokens.iter().skip(start + 1) {
        match t {
            Token::Punct('(') => depth += 1,
            Token::Punct(')') => depth = depth.saturating_sub(1),
            Token::Punct(',') if depth == 0 => {
                names.push(item_name(&item));
                item.clear();
                continue;
            }
            _ if depth == 0 && is_keyword(t, "FROM") => break,
            _ => {}
        }
        item.push(t);
    }
    if !item.is_empty() {
        names.push(item_name(&item));
    }
    names
}

fn item_name(item: &[&Token]) -> String {
    match item.last() {
        Some(Token::Word(w)) => w
            .rsplit('.')
            .next()
            .unwrap_or(w.as_str())
            .to_ascii_lowercase(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tables_columns_binds_and_select_names() {
        let sql = "SELECT s.x AS a, t.y, MAX(NVL(u.z, 0)) AS c /* from x.y */ \
                   FROM students JOIN (SELECT p.q FROM person) rel ON rel.k = students.dcid \
                   WHERE students.n = ':no' AND students.m = :arg1 AND person.id = :arg1";
        assert_eq!(select_names(sql), vec!["a", "y", "c"]);
        assert_eq!(binds(sql), vec!["arg1"]);
        let read: Vec<String> = columns_read(sql).iter().map(|c| c.to_string()).collect();
        assert_eq!(
            read,
            vec!["PERSON.ID", "STUDENTS.DCID", "STUDENTS.M", "STUDENTS.N"]
        );
    }
}
