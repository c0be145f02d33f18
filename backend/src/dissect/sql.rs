//! SQL text as it may leave a node: every literal (quoted strings, dollar-quoted strings, numbers)
//! replaced by `?`, comments taken out (they carry tags and, now and then, secrets), runs of
//! whitespace made one space, and the whole bounded. Parameters (`$1`) and quoted identifiers
//! stay. What is left is a statement's shape, which is what groups requests and what a user
//! searches for; the values are the user's data and stay where they were captured.

/// The longest statement kept, in bytes (a longer one ends in `…`).
pub const MAX_STATEMENT: usize = 2048;

/// `sql` with its literals replaced by `?` (see the module's header), at most `MAX_STATEMENT`
/// bytes.
pub fn normalize(sql: &str) -> String {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len().min(MAX_STATEMENT + 4));
    let mut i = 0;
    while i < b.len() && out.len() < MAX_STATEMENT {
        let c = b[i];
        let prev_ident = out.as_bytes().last().is_some_and(|&p| is_ident(p));
        match c {
            b'\'' => {
                i = skip_quoted(b, i + 1, false);
                out.push('?');
            }
            // E'…' (backslash escapes), B'…', X'…', N'…': a prefixed string constant.
            b'E' | b'e' | b'B' | b'b' | b'X' | b'x' | b'N' | b'n' if !prev_ident && b.get(i + 1) == Some(&b'\'') => {
                i = skip_quoted(b, i + 2, c == b'E' || c == b'e');
                out.push('?');
            }
            b'$' if !prev_ident => match dollar_tag(b, i) {
                Some(tag) => {
                    i = skip_dollar(b, i + tag.len(), tag);
                    out.push('?');
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
                i = skip_number(b, i);
                out.push('?');
            }
            b'.' if !prev_ident && b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                i = skip_number(b, i);
                out.push('?');
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
    if i < b.len() {
        let mut cut = out.len().min(MAX_STATEMENT);
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
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
