//! PARSER for PostgreSQL isolation-tester spec files (`src/test/isolation/README`).
//!
//! ```text
//! setup { SQL }            # any number, run in order before each permutation
//! teardown { SQL }         # at most one, after each permutation
//! session s1               # one or more sessions, each with one or more steps
//!   setup { SQL }          # optional, on the session's own connection
//!   step s1a { SQL }       # step names are unique in the file
//!   teardown { SQL }       # optional
//! permutation s1a s2a(s1a) s1b(*)   # optional; none means every interleaving
//! ```
//! As in isolationtester's scanner, a SQL block runs from `{` to the FIRST `}` (no nesting),
//! names are bare (`[A-Za-z0-9_]+`) or double-quoted (`""` escapes a quote) and not
//! case-folded, and `#` starts a comment outside SQL blocks. Blocker markers in permutations
//! (`(*)`, `(step)`, `(step notices N)`) are kept for the runner. Errors are `file:line: what`.

use std::fmt;

/// Generating every interleaving stops past this many permutations (add permutation lines).
pub const PERMUTATIONS_MAX: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// The file name (for messages).
    pub file: String,
    pub setup: Vec<String>,
    pub teardown: Option<String>,
    pub sessions: Vec<Session>,
    /// Explicit permutations, or every interleaving when the file has none.
    pub permutations: Vec<Vec<PermutationStep>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub name: String,
    pub setup: Option<String>,
    pub teardown: Option<String>,
    pub steps: Vec<StepDef>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepDef {
    pub name: String,
    pub sql: String,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermutationStep {
    pub step: String,
    /// Raw blocker markers: `*`, a step name, or `step notices N`.
    pub markers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub file: String,
    pub line: usize,
    pub what: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.what)
    }
}

impl std::error::Error for ParseError {}

impl Spec {
    /// The session index and definition of a step.
    pub fn step(&self, name: &str) -> Option<(usize, &StepDef)> {
        self.sessions
            .iter()
            .enumerate()
            .find_map(|(i, s)| s.steps.iter().find(|st| st.name == name).map(|st| (i, st)))
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Quoted(String),
    Sql(String),
    Open,
    Close,
    Comma,
    Star,
}

struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
}

impl Lexer<'_> {
    /// The next token and the line it starts on.
    fn next(&mut self) -> Result<Option<(Tok, usize)>, (usize, String)> {
        loop {
            let Some(&c) = self.chars.peek() else { return Ok(None) };
            if c == '\n' {
                self.line += 1;
                self.chars.next();
            } else if c.is_whitespace() {
                self.chars.next();
            } else if c == '#' {
                while self.chars.peek().is_some_and(|&c| c != '\n') {
                    self.chars.next();
                }
            } else {
                break;
            }
        }
        let line = self.line;
        let c = self.chars.next().expect("peeked");
        let tok = match c {
            '{' => Tok::Sql(self.sql_block(line)?),
            '"' => Tok::Quoted(self.quoted(line)?),
            '(' => Tok::Open,
            ')' => Tok::Close,
            ',' => Tok::Comma,
            '*' => Tok::Star,
            c if c.is_ascii_alphanumeric() || c == '_' => {
                let mut word = String::from(c);
                while let Some(&d) =
                    self.chars.peek().filter(|d| d.is_ascii_alphanumeric() || **d == '_')
                {
                    word.push(d);
                    self.chars.next();
                }
                Tok::Word(word)
            }
            c => return Err((line, format!("unexpected character {c:?}"))),
        };
        Ok(Some((tok, line)))
    }

    /// The SQL up to the block's closing `}`: the first one outside a '…' string literal and
    /// a `--` comment (so a literal may hold braces, e.g. a JSON document).
    fn sql_block(&mut self, line: usize) -> Result<String, (usize, String)> {
        let mut sql = String::new();
        let (mut quoted, mut comment) = (false, false);
        while let Some(c) = self.chars.next() {
            match c {
                '}' if !quoted && !comment => return Ok(sql.trim().to_string()),
                '\'' if !comment => quoted = !quoted,
                '-' if !quoted && !comment && self.chars.peek() == Some(&'-') => comment = true,
                '\n' => {
                    self.line += 1;
                    comment = false;
                }
                _ => {}
            }
            sql.push(c);
        }
        Err((line, "SQL block opened here is never closed with '}'".into()))
    }

    fn quoted(&mut self, line: usize) -> Result<String, (usize, String)> {
        let mut name = String::new();
        while let Some(c) = self.chars.next() {
            match c {
                '"' if self.chars.peek() == Some(&'"') => {
                    self.chars.next();
                    name.push('"');
                }
                '"' => return Ok(name),
                '\n' => return Err((line, "quoted name runs past the end of the line".into())),
                c => name.push(c),
            }
        }
        Err((line, "quoted name is never closed".into()))
    }
}

struct Parser<'a> {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    file: &'a str,
    last_line: usize,
}

type PResult<T> = Result<T, ParseError>;

impl Parser<'_> {
    fn err<T>(&self, line: usize, what: impl Into<String>) -> PResult<T> {
        Err(ParseError { file: self.file.to_string(), line, what: what.into() })
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(t, _)| t)
    }

    fn line(&self) -> usize {
        self.toks.get(self.pos).map_or(self.last_line, |(_, l)| *l)
    }

    fn peek_keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w == kw)
    }

    fn keyword(&mut self, kw: &str) -> PResult<bool> {
        if self.peek_keyword(kw) {
            self.pos += 1;
            return Ok(true);
        }
        Ok(false)
    }

    fn name(&mut self, what: &str) -> PResult<String> {
        let line = self.line();
        match self.toks.get(self.pos) {
            Some((Tok::Word(w), _)) if !is_keyword(w) => {
                self.pos += 1;
                Ok(w.clone())
            }
            Some((Tok::Quoted(w), _)) => {
                self.pos += 1;
                Ok(w.clone())
            }
            Some((t, _)) => self.err(line, format!("expected {what}, found {}", describe(t))),
            None => self.err(line, format!("expected {what}, found end of file")),
        }
    }

    fn sql(&mut self, after: &str) -> PResult<String> {
        let line = self.line();
        match self.toks.get(self.pos) {
            Some((Tok::Sql(s), _)) => {
                self.pos += 1;
                Ok(s.clone())
            }
            Some((t, _)) => self
                .err(line, format!("expected '{{' SQL block after {after}, found {}", describe(t))),
            None => {
                self.err(line, format!("expected '{{' SQL block after {after}, found end of file"))
            }
        }
    }

    fn spec(&mut self) -> PResult<Spec> {
        let mut setup = Vec::new();
        while self.keyword("setup")? {
            setup.push(self.sql("setup")?);
        }
        let teardown = if self.keyword("teardown")? { Some(self.sql("teardown")?) } else { None };
        let mut sessions: Vec<Session> = Vec::new();
        while self.peek_keyword("session") {
            let line = self.line();
            self.pos += 1;
            let session = self.session(line)?;
            if sessions.iter().any(|s| s.name == session.name) {
                return self.err(line, format!("session {:?} is defined twice", session.name));
            }
            sessions.push(session);
        }
        if sessions.is_empty() {
            let what = if self.peek().is_some() { "expected 'session'" } else { "no sessions" };
            return self.err(self.line(), what);
        }
        let mut permutations = Vec::new();
        while self.keyword("permutation")? {
            permutations.push(self.permutation()?);
        }
        if let Some(t) = self.peek() {
            let what =
                format!("unexpected {} (expected 'permutation' or end of file)", describe(t));
            return self.err(self.line(), what);
        }
        Ok(Spec { file: self.file.to_string(), setup, teardown, sessions, permutations })
    }

    fn session(&mut self, line: usize) -> PResult<Session> {
        let name = self.name("a session name")?;
        let setup = if self.keyword("setup")? { Some(self.sql("setup")?) } else { None };
        let mut steps = Vec::new();
        while self.peek_keyword("step") {
            let line = self.line();
            self.pos += 1;
            let step_name = self.name("a step name")?;
            let sql = self.sql(&format!("step {step_name}"))?;
            steps.push(StepDef { name: step_name, sql, line });
        }
        if steps.is_empty() {
            return self.err(line, format!("session {name:?} has no steps"));
        }
        let teardown = if self.keyword("teardown")? { Some(self.sql("teardown")?) } else { None };
        Ok(Session { name, setup, teardown, steps })
    }

    fn permutation(&mut self) -> PResult<Vec<PermutationStep>> {
        let mut steps = Vec::new();
        while matches!(self.peek(), Some(Tok::Word(w)) if !is_keyword(w))
            || matches!(self.peek(), Some(Tok::Quoted(_)))
        {
            let step = self.name("a step name")?;
            let markers =
                if self.peek() == Some(&Tok::Open) { self.markers()? } else { Vec::new() };
            steps.push(PermutationStep { step, markers });
        }
        if steps.is_empty() {
            return self.err(self.line(), "permutation lists no steps");
        }
        Ok(steps)
    }

    fn markers(&mut self) -> PResult<Vec<String>> {
        self.pos += 1; // '('
        let mut markers = Vec::new();
        loop {
            let line = self.line();
            let marker = match self.peek() {
                Some(Tok::Star) => {
                    self.pos += 1;
                    "*".to_string()
                }
                _ => {
                    let mut m = self.name("a blocker step name or '*'")?;
                    if self.keyword("notices")? {
                        match self.toks.get(self.pos) {
                            Some((Tok::Word(n), _)) if n.parse::<u32>().is_ok() => {
                                m = format!("{m} notices {n}");
                                self.pos += 1;
                            }
                            _ => return self.err(line, "expected a count after 'notices'"),
                        }
                    }
                    m
                }
            };
            markers.push(marker);
            match self.peek() {
                Some(Tok::Comma) => self.pos += 1,
                Some(Tok::Close) => {
                    self.pos += 1;
                    return Ok(markers);
                }
                _ => return self.err(self.line(), "expected ',' or ')' in step markers"),
            }
        }
    }
}

fn is_keyword(w: &str) -> bool {
    matches!(w, "setup" | "teardown" | "session" | "step" | "permutation")
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Word(w) => format!("'{w}'"),
        Tok::Quoted(w) => format!("\"{w}\""),
        Tok::Sql(_) => "a SQL block".into(),
        Tok::Open => "'('".into(),
        Tok::Close => "')'".into(),
        Tok::Comma => "','".into(),
        Tok::Star => "'*'".into(),
    }
}

/// Parses spec text; `file` names it in errors.
pub fn parse_spec(text: &str, file: &str) -> Result<Spec, ParseError> {
    let mut lexer = Lexer { chars: text.chars().peekable(), line: 1 };
    let mut toks = Vec::new();
    loop {
        match lexer.next() {
            Ok(Some(t)) => toks.push(t),
            Ok(None) => break,
            Err((line, what)) => return Err(ParseError { file: file.to_string(), line, what }),
        }
    }
    let last_line = toks.last().map_or(1, |(_, l)| *l);
    let mut parser = Parser { toks, pos: 0, file, last_line };
    let mut spec = parser.spec()?;
    check_names(&spec, &parser)?;
    if spec.permutations.is_empty() {
        spec.permutations = all_interleavings(&spec)
            .ok_or_else(|| ParseError {
                file: file.to_string(),
                line: 1,
                what: format!("more than {PERMUTATIONS_MAX} interleavings; add permutation lines"),
            })?
            .into_iter()
            .map(|p| p.into_iter().map(|step| PermutationStep { step, markers: vec![] }).collect())
            .collect();
    }
    Ok(spec)
}

/// Step names unique; permutations and markers name existing steps.
fn check_names(spec: &Spec, parser: &Parser<'_>) -> Result<(), ParseError> {
    let mut seen = std::collections::BTreeSet::new();
    for step in spec.sessions.iter().flat_map(|s| &s.steps) {
        if !seen.insert(step.name.as_str()) {
            return parser.err(step.line, format!("step {:?} is defined twice", step.name));
        }
    }
    // Permutation lines are not tracked individually; find the line of the bad name.
    let perm_lines: Vec<usize> = parser
        .toks
        .iter()
        .filter(|(t, _)| matches!(t, Tok::Word(w) if w == "permutation"))
        .map(|(_, l)| *l)
        .collect();
    for (i, perm) in spec.permutations.iter().enumerate() {
        let line = perm_lines.get(i).copied().unwrap_or(1);
        for ps in perm {
            if !seen.contains(ps.step.as_str()) {
                return parser.err(line, format!("permutation names undefined step {:?}", ps.step));
            }
            for m in &ps.markers {
                let target = m.split(' ').next().unwrap_or("");
                if target != "*" && !seen.contains(target) {
                    return parser.err(line, format!("marker names undefined step {target:?}"));
                }
            }
        }
    }
    Ok(())
}

/// Every merge of the sessions' step lists that keeps each session's order, in
/// isolationtester's order (depth first, lower session first). None past the limit.
fn all_interleavings(spec: &Spec) -> Option<Vec<Vec<String>>> {
    let lens: Vec<usize> = spec.sessions.iter().map(|s| s.steps.len()).collect();
    let total: usize = lens.iter().sum();
    let mut out = Vec::new();
    // Explicit DFS stack: (positions per session, next session to try, path so far).
    let mut stack = vec![(vec![0usize; lens.len()], 0usize, Vec::<String>::new())];
    while let Some((pos, next, path)) = stack.pop() {
        if path.len() == total {
            out.push(path);
            if out.len() > PERMUTATIONS_MAX {
                return None;
            }
            continue;
        }
        let Some(s) = (next..lens.len()).find(|&s| pos[s] < lens[s]) else { continue };
        stack.push((pos.clone(), s + 1, path.clone()));
        let mut child_pos = pos;
        let mut child_path = path;
        child_path.push(spec.sessions[s].steps[child_pos[s]].name.clone());
        child_pos[s] += 1;
        stack.push((child_pos, 0, child_path));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLASSROOM: &str = r#"
# two sessions
setup { CREATE TABLE t (id int); }
setup { INSERT INTO t VALUES (1); }
teardown { DROP TABLE t; }
session "s 1"
setup { BEGIN; }
step rx1 { SELECT * FROM t; }
step wy1 { INSERT INTO t VALUES (2); }
step c1 { COMMIT; }
session s2
step ry2 { SELECT 1; }
step wx2 { UPDATE t SET id = 3; }
step c2 { COMMIT; }
"#;

    #[test]
    fn parses_and_generates_twenty_interleavings() {
        let spec = parse_spec(CLASSROOM, "c.spec").unwrap();
        assert_eq!(spec.setup.len(), 2);
        assert_eq!(spec.sessions[0].name, "s 1");
        assert_eq!(spec.sessions[0].setup.as_deref(), Some("BEGIN;"));
        assert_eq!(spec.sessions[1].steps[1].line, 13);
        assert_eq!(spec.permutations.len(), 20);
        let first: Vec<&str> = spec.permutations[0].iter().map(|p| p.step.as_str()).collect();
        assert_eq!(first, ["rx1", "wy1", "c1", "ry2", "wx2", "c2"]);
        let last: Vec<&str> = spec.permutations[19].iter().map(|p| p.step.as_str()).collect();
        assert_eq!(last, ["ry2", "wx2", "c2", "rx1", "wy1", "c1"]);
    }

    #[test]
    fn permutation_markers() {
        let text =
            "session a\nstep a1 { x }\nstep a2 { y }\npermutation a1(*) a2(a1, a1 notices 2)\n";
        let spec = parse_spec(text, "m.spec").unwrap();
        assert_eq!(spec.permutations[0][0].markers, ["*"]);
        assert_eq!(spec.permutations[0][1].markers, ["a1", "a1 notices 2"]);
    }
}
