//! SQL text as it may leave a node: every literal (quoted strings, dollar-quoted strings, numbers)
//! replaced by `?`, comments taken out (they carry tags and, now and then, secrets), runs of
//! whitespace made one space, and the whole bounded. Parameters (`$1`) and quoted identifiers
//! stay. What is left is a statement's shape, which is what groups requests and what a user
//! searches for; the values are the user's data and stay where they were captured.

use std::sync::atomic::{AtomicBool, Ordering};

/// The longest statement kept, in bytes (a longer one ends in `…`).
pub const MAX_STATEMENT: usize = 2048;

/// `--keep-sql-literals`: literals stay (comments still go, whitespace is still folded).
static KEEP_LITERALS: AtomicBool = AtomicBool::new(false);

/// Whether statements keep their literals from now on (the CLI's `--keep-sql-literals`).
pub fn keep_literals(on: bool) {
    KEEP_LITERALS.store(on, Ordering::Relaxed);
}

/// `sql` with its literals replaced by `?` (see the module's header), at most `MAX_STATEMENT`
/// bytes.
pub fn normalize(sql: &str) -> String {
    normalize_keeping(sql, KEEP_LITERALS.load(Ordering::Relaxed))
}

/// `normalize`, with the literals themselves in place of `?` when `keep`.
fn normalize_keeping(sql: &str, keep: bool) -> String {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len().min(MAX_STATEMENT + 4));
    // A kept literal cut at the bound.
    let mut cut_short = false;
    let mut i = 0;
    while i < b.len() && out.len() < MAX_STATEMENT {
        let c = b[i];
        let prev_ident = out.as_bytes().last().is_some_and(|&p| is_ident(p));
        match c {
            b'\'' => {
                let from = i;
                i = skip_quoted(b, i + 1, false);
                cut_short |= literal(&mut out, &sql[from..i], keep);
            }
            // E'…' (backslash escapes), B'…', X'…', N'…': a prefixed string constant.
            b'E' | b'e' | b'B' | b'b' | b'X' | b'x' | b'N' | b'n' if !prev_ident && b.get(i + 1) == Some(&b'\'') => {
                let from = i;
                i = skip_quoted(b, i + 2, c == b'E' || c == b'e');
                cut_short |= literal(&mut out, &sql[from..i], keep);
            }
            b'$' if !prev_ident => match dollar_tag(b, i) {
                Some(tag) => {
                    let from = i;
                    i = skip_dollar(b, i + tag.len(), tag);
                    cut_short |= literal(&mut out, &sql[from..i], keep);
                }
                None => {
                    // `$1`: a parameter, kept.
                    out.push('$');
                    i += 1;
                    while i < b.len() && b[i].is_ascii_digit() {
                        out.push(b[i] as char);
                        i += 1;
                    }
                }
            },
            b'"' => {
                let end = skip_identifier(b, i + 1);
                out.push_str(&sql[i..end]);
                i = end;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                space(&mut out);
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = skip_block_comment(b, i + 2);
                space(&mut out);
            }
            b'0'..=b'9' if !prev_ident => {
                let from = i;
                i = skip_number(b, i);
                cut_short |= literal(&mut out, &sql[from..i], keep);
            }
            b'.' if !prev_ident && b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let from = i;
                i = skip_number(b, i);
                cut_short |= literal(&mut out, &sql[from..i], keep);
            }
            c if c.is_ascii_whitespace() => {
                space(&mut out);
                i += 1;
            }
            _ => {
                // A whole UTF-8 character: `i` is always on a character boundary here.
                let ch = sql[i..].chars().next().unwrap_or('\u{fffd}');
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    let mut out = out.trim().to_string();
    if i < b.len() || cut_short {
        let mut cut = out.len().min(MAX_STATEMENT);
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

/// A literal: `?`, or itself with `--keep-sql-literals`, as much as the bound leaves room for;
/// whether it was cut.
fn literal(out: &mut String, text: &str, keep: bool) -> bool {
    if !keep {
        out.push('?');
        return false;
    }
    let room = MAX_STATEMENT.saturating_sub(out.len());
    let cut = (0..=room.min(text.len())).rev().find(|&n| text.is_char_boundary(n)).unwrap_or(0);
    out.push_str(&text[..cut]);
    cut < text.len()
}

/// The statement's first word, upper-case: what it does when the server did not say (`SELECT`).
pub fn first_word(statement: &str) -> String {
    statement
        .trim_start_matches(|c: char| c.is_whitespace() || c == '(')
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("")
        .to_ascii_uppercase()
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

fn space(out: &mut String) {
    if !out.is_empty() && !out.ends_with(' ') {
        out.push(' ');
    }
}

/// Past a quoted string whose body starts at `i`: `''` is a quote inside it, and with
/// `backslash`, so is `\'`. A string never closed runs to the end.
fn skip_quoted(b: &[u8], mut i: usize, backslash: bool) -> usize {
    while i < b.len() {
        match b[i] {
            b'\\' if backslash => i += 2,
            b'\'' if b.get(i + 1) == Some(&b'\'') => i += 2,
            b'\'' => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

fn skip_identifier(b: &[u8], mut i: usize) -> usize {
    while i < b.len() {
        match b[i] {
            b'"' if b.get(i + 1) == Some(&b'"') => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

/// The `$tag$` opening a dollar-quoted string at `i` (the tag may be empty: `$$`).
fn dollar_tag(b: &[u8], i: usize) -> Option<&[u8]> {
    let mut j = i + 1;
    while j < b.len() && (b[j].is_ascii_alphabetic() || b[j] == b'_' || (j > i + 1 && b[j].is_ascii_digit())) {
        j += 1;
    }
    (b.get(j) == Some(&b'$')).then(|| &b[i..=j])
}

fn skip_dollar(b: &[u8], from: usize, tag: &[u8]) -> usize {
    b[from..].windows(tag.len()).position(|w| w == tag).map_or(b.len(), |p| from + p + tag.len())
}

fn skip_block_comment(b: &[u8], mut i: usize) -> usize {
    let mut depth = 1;
    while i < b.len() && depth > 0 {
        match (b[i], b.get(i + 1)) {
            (b'*', Some(b'/')) => {
                depth -= 1;
                i += 2;
            }
            (b'/', Some(b'*')) => {
                depth += 1;
                i += 2;
            }
            _ => i += 1,
        }
    }
    i
}

/// Past a numeric constant: digits, a decimal point, an exponent, hex/octal/binary prefixes and
/// underscores (PostgreSQL 16).
fn skip_number(b: &[u8], mut i: usize) -> usize {
    while i < b.len() {
        match b[i] {
            b'0'..=b'9' | b'.' | b'_' | b'x' | b'X' | b'o' | b'O' | b'a'..=b'd' | b'f' | b'A'..=b'D' | b'F' => i += 1,
            b'e' | b'E' => {
                i += 1;
                if matches!(b.get(i), Some(b'+' | b'-')) {
                    i += 1;
                }
            }
            _ => break,
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_keep_sql_literals_the_literals_stay_and_comments_still_go() {
        let kept =
            normalize_keeping("SELECT * FROM t WHERE a = 'it''s' AND n > 1.5e3 -- token=x\n AND b = $$z$$", true);
        assert_eq!(kept, "SELECT * FROM t WHERE a = 'it''s' AND n > 1.5e3 AND b = $$z$$");
        // Still bounded: a long literal is cut where the statement's bound falls.
        let long = format!("SELECT '{}'", "é".repeat(MAX_STATEMENT));
        let kept = normalize_keeping(&long, true);
        assert!(kept.len() <= MAX_STATEMENT + '…'.len_utf8() && kept.ends_with('…'), "{}", kept.len());
        assert_eq!(normalize_keeping("SELECT 'x'", false), "SELECT ?");
    }

    #[test]
    fn literals_become_question_marks_and_the_shape_stays() {
        let cases = [
            ("SELECT * FROM users WHERE id = 42", "SELECT * FROM users WHERE id = ?"),
            ("select name from t where email = 'a@b.c' and n > 1.5e3", "select name from t where email = ? and n > ?"),
            ("INSERT INTO t VALUES ('it''s', E'a\\'b', -7, x'1F')", "INSERT INTO t VALUES (?, ?, -?, ?)"),
            ("SELECT $1::int, $2", "SELECT $1::int, $2"),
            ("SELECT $$secret$$, $tag$x $$ y$tag$", "SELECT ?, ?"),
            ("SELECT \"Weird 42\" FROM t1", "SELECT \"Weird 42\" FROM t1"),
            ("SELECT 1 -- password=hunter2\n FROM t", "SELECT ? FROM t"),
            ("/* traceparent='00-abc' */ SELECT   .5", "SELECT ?"),
            ("UPDATE t2 SET col_3 = 0x1F WHERE id IN (1, 2,3)", "UPDATE t2 SET col_3 = ? WHERE id IN (?, ?,?)"),
            ("SELECT 'unterminated", "SELECT ?"),
            ("SELECT 'Zoë', ünïcode FROM t", "SELECT ?, ünïcode FROM t"),
        ];
        for (sql, want) in cases {
            assert_eq!(normalize(sql), want, "{sql}");
        }
    }

    #[test]
    fn a_long_statement_is_cut_on_a_character_boundary() {
        let sql = format!("SELECT {} FROM t", "é, ".repeat(2000));
        let out = normalize(&sql);
        assert!(out.ends_with('…') && out.len() <= MAX_STATEMENT + '…'.len_utf8(), "{}", out.len());
    }

    #[test]
    fn the_first_word_says_what_a_statement_does() {
        assert_eq!(first_word("  select 1"), "SELECT");
        assert_eq!(first_word("(SELECT 1) UNION (SELECT 2)"), "SELECT");
        assert_eq!(first_word(""), "");
    }
}
