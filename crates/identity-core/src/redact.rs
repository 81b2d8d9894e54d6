//! Log redaction (the `emit_log_hook` in `pg::redact` applies it to every
//! message, detail, hint, context, internal query and statement text the
//! server logs).
//!
//! What is a secret:
//!
//! - API tokens, recognised by shape and checksum (`token::looks_like_token`);
//!   JWTs (three base64url segments, the first starting `eyJ`); Svix webhook
//!   secrets (`whsec_...`): anywhere, in any text;
//! - the secret arguments of our functions, by position or by name, when a
//!   statement calls them (comments and whitespace anywhere in the call): a
//!   literal anywhere in such an argument is replaced, any `$n` anywhere in
//!   it (`trim($3)`, `$3::text`) makes parameter n secret, and a PostgREST
//!   body reference (`"secret" := pgrst_body."secret"`) makes the JSON key
//!   `secret` secret in the bound body (`$1 AS json_data`) and in any JSON
//!   literal of the statement;
//! - the values given to the secret settings (`SET identity.jwt_secret = ...`,
//!   `set_config('identity.encryption_key', ...)`, `ALTER SYSTEM ...`).
//!
//! Fail closed, everywhere:
//!
//! - a statement the scanner cannot read (an unterminated string, quoted
//!   name, dollar quote or comment; longer than [`MAX_SCAN`]) is not logged
//!   at all ([`NOT_LOGGED`]), and every bound parameter of the report is
//!   replaced;
//! - a statement that mentions one of our secret-taking functions or secret
//!   settings where the scanner cannot follow it (inside a string or a
//!   dollar-quoted body: `DO`, `format(...)`, dynamic SQL; after `EXECUTE`)
//!   has every literal and every bound parameter replaced;
//! - when the statement is sensitive (it calls or mentions a secret-taking
//!   function or setting), Postgres' own texts about it are redacted too:
//!   any run of 8 or more bytes of a string literal of that statement, the
//!   quoted parts of input-syntax and syntax errors (`syntax error at or near
//!   "'sk-...'"`, `Token "..." is invalid`), and `JSON data, line n: ...`.
//!
//! Linear and bounded: one pass of a small SQL scanner (no backtracking, no
//! rescans), texts longer than [`MAX_SCAN`] are never scanned. Pure, no
//! panics: slicing only through `get`.

use crate::token::looks_like_token;
use std::collections::HashSet;
use std::sync::Arc;

/// 8-byte windows of literals (shared: a report's copies of its statement's
/// Secrets do not copy them).
type Grams = Arc<HashSet<u64, foldhash::fast::FixedState>>;

pub const REDACTED: &str = "[redacted]";

/// What replaces a text the redactor will not let through: a statement it
/// cannot read, a text too long to scan.
pub const NOT_LOGGED: &str = "[not logged: redacted]";

/// Texts longer than this (bytes) are not scanned: replaced by NOT_LOGGED.
pub const MAX_SCAN: usize = 1 << 20;

/// Total bytes of string literals of a sensitive statement that are indexed
/// (8-byte windows) to find them again in messages; past this every message
/// of the report is replaced by NOT_LOGGED.
const MAX_INDEXED: usize = 256 * 1024;

/// Windows of this many bytes of a literal, found in a message, are masked.
const GRAM: usize = 8;

/// Functions whose arguments carry secrets: name, 1-based positions, names.
const SECRET_ARGS: &[(&str, &[usize], &[&str])] = &[
    ("verify_api_token", &[1], &["token"]),
    ("exchange_api_token", &[1], &["token"]),
    ("user_by_api_token", &[1], &["token"]),
    ("authenticate", &[1], &["token"]),
    ("verify_jwt", &[1], &["token"]),
    ("try_verify_jwt", &[1], &["token"]),
    ("try_verify_api_token", &[1], &["token"]),
    ("explain_jwt", &[1], &["token"]),
    ("decode_jwt", &[1], &["token"]),
    ("create_credential", &[3], &["secret"]),
    ("create_system_credential", &[3], &["secret"]),
    ("update_credential", &[2], &["changes"]),
    ("exchange_external_token", &[1], &["token"]),
    ("handle_webhook", &[2, 3], &["headers", "body"]),
    // Its options may hold a webhook_secret (also caught by shape below).
    ("register_issuer", &[3], &["options"]),
];

/// Settings whose values are secrets.
const SECRET_SETTINGS: &[&str] = &[
    "identity.jwt_secret",
    "identity.encryption_key",
    "identity.previous_encryption_keys",
];

/// The names of those settings after `identity.`, and the parts a string
/// that assembles one would hold.
const SETTING_WORDS: &[&str] = &["jwt_secret", "encryption_key"];

/// What the statements behind one log report say about its secrets: built by
/// [`statement`] (and [`sql_secrets`] for other SQL texts of the report),
/// merged, then applied to each text by [`field`].
#[derive(Clone, Debug, Default)]
pub struct Secrets {
    /// Every bound parameter is secret (fail closed).
    all_params: bool,
    /// The secret parameter numbers.
    params: Vec<usize>,
    /// Parameters that hold a PostgREST body (`$n AS json_data`).
    body_params: Vec<usize>,
    /// JSON keys whose values are secret (PostgREST `pgrst_body."key"`).
    json_keys: Vec<String>,
    /// The statement calls or mentions a secret-taking function or setting,
    /// or could not be read: Postgres' own texts get the extra rules.
    sensitive: bool,
    /// 8-byte windows of the sensitive statement's string literals.
    grams: Grams,
    /// Too many literal bytes to index: every message is replaced.
    too_many_literals: bool,
    /// standard_conforming_strings is off: `\'` escapes a quote.
    backslash_quotes: bool,
}

impl Secrets {
    /// For a text this extension wrote itself (never a quote of the
    /// statement's literals, by the rule that no error names a secret): the
    /// same parameters, JSON keys and token shapes, without the rules for
    /// Postgres' own texts (literal echoes, quoted input), which would
    /// mask our own words where they happen to match a literal.
    pub fn for_our_text(&self) -> Secrets {
        Secrets {
            sensitive: false,
            too_many_literals: false,
            ..self.clone()
        }
    }

    /// Only these parameters are secret.
    pub fn with_params(params: &[usize]) -> Self {
        Secrets {
            params: params.to_vec(),
            ..Secrets::default()
        }
    }

    /// Adds what another text of the same report says.
    pub fn merge(&mut self, other: Secrets) {
        self.all_params |= other.all_params;
        self.params.extend(other.params);
        self.params.sort_unstable();
        self.params.dedup();
        self.body_params.extend(other.body_params);
        self.body_params.sort_unstable();
        self.body_params.dedup();
        for k in other.json_keys {
            if !self.json_keys.contains(&k) {
                self.json_keys.push(k);
            }
        }
        self.sensitive |= other.sensitive;
        self.too_many_literals |= other.too_many_literals;
        self.backslash_quotes |= other.backslash_quotes;
        if !other.grams.is_empty() {
            if self.grams.is_empty() {
                self.grams = other.grams;
            } else {
                Arc::make_mut(&mut self.grams).extend(other.grams.iter().copied());
            }
        }
    }

    /// The secret parameter numbers, sorted (all of them when `all_params`).
    pub fn params(&self) -> &[usize] {
        &self.params
    }

    /// Every parameter is secret.
    pub fn all_params(&self) -> bool {
        self.all_params
    }

    /// Postgres' own texts about this report get the extra rules.
    pub fn sensitive(&self) -> bool {
        self.sensitive
    }

    /// JSON keys whose values are secret in a bound body.
    pub fn json_keys(&self) -> &[String] {
        &self.json_keys
    }

    /// Every parameter secret (after a statement turned out unloggable).
    pub fn set_all_params(&mut self) {
        self.all_params = true;
        self.sensitive = true;
    }

    /// Nothing known: every parameter secret, the report sensitive.
    pub fn fail_closed() -> Self {
        Secrets {
            all_params: true,
            sensitive: true,
            ..Secrets::default()
        }
    }
}

/// A statement (debug_query_string, an internal query): its redacted text
/// (None when nothing changes; [`NOT_LOGGED`] when it cannot be read) and
/// what it says about the report's secrets. `backslash_quotes`: the session
/// has `standard_conforming_strings = off` (`\'` escapes a quote in every
/// string).
pub fn statement(text: &str, backslash_quotes: bool) -> (Option<String>, Secrets) {
    let Some(scan) = (text.len() <= MAX_SCAN)
        .then(|| scan(text, backslash_quotes, Mode::Statement))
        .flatten()
    else {
        // Unreadable or too long: not logged, every parameter secret, and
        // the whole text indexed for the messages that quote it.
        let mut s = Secrets::fail_closed();
        s.backslash_quotes = backslash_quotes;
        index_whole(text, &mut s);
        return (Some(NOT_LOGGED.to_string()), s);
    };
    let mut secrets = scan.secrets;
    secrets.backslash_quotes = backslash_quotes;
    let mut spans = scan.spans;
    json_literals(text, &scan.literals, &secrets.json_keys, &mut spans);
    if secrets.sensitive {
        index_literals(text, &scan.literals, &mut secrets);
    }
    setting_values(text, &mut spans);
    words(text, &mut spans);
    (apply(text, spans), secrets)
}

/// A fingerprint of a statement's text (to know it again).
pub fn fingerprint(text: &str) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(0x1d3).hash_one(text)
}

/// Postgres' syntax and input errors quote the offending input: SQLSTATE
/// 42601, and class 22 (data exception) but for 22023, which is ours (and
/// settings', whose values `setting_values` covers).
pub fn input_error(sqlstate: &str) -> bool {
    sqlstate == "42601" || (sqlstate.starts_with("22") && sqlstate != "22023")
}

/// [`statement`] for a report with this SQLSTATE: a sensitive statement that
/// Postgres could not parse (42601) is not logged, as the scanner's idea of
/// its arguments may not be Postgres' (`f('a', 'b' 'secret')`).
pub fn statement_for(
    text: &str,
    backslash_quotes: bool,
    sqlstate: &str,
) -> (Option<String>, Secrets) {
    let (out, mut secrets) = statement(text, backslash_quotes);
    if sqlstate == "42601" && secrets.sensitive && out.as_deref() != Some(NOT_LOGGED) {
        secrets.all_params = true;
        index_whole(text, &mut secrets);
        return (Some(NOT_LOGGED.to_string()), secrets);
    }
    (out, secrets)
}

/// What a SQL text other than the statement (a logged `execute <name>: ...`
/// message, auto_explain's query text and parameters) says about secret
/// parameters: read loosely, never fails.
pub fn sql_secrets(text: &str, backslash_quotes: bool) -> Secrets {
    if text.len() > MAX_SCAN {
        return Secrets::fail_closed();
    }
    scan(text, backslash_quotes, Mode::Field)
        .map(|s| s.secrets)
        .unwrap_or_else(Secrets::fail_closed)
}

/// A message, detail, hint, context or internal query of a report: the text
/// with every secret replaced, or None when nothing was. `input_error`: the
/// report is one of Postgres' syntax or input errors (SQLSTATE 42601, class
/// 22 but for 22023), which quote the offending input.
pub fn field(text: &str, secrets: &Secrets, input_error: bool) -> Option<String> {
    if text.is_empty() {
        return None;
    }
    if text.len() > MAX_SCAN || (secrets.sensitive && secrets.too_many_literals) {
        return Some(NOT_LOGGED.to_string());
    }
    let mut spans = Vec::new();
    if let Some(scan) = scan(text, secrets.backslash_quotes, Mode::Field) {
        spans = scan.spans;
        let mut keys = secrets.json_keys.clone();
        for k in scan.secrets.json_keys {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        json_literals(text, &scan.literals, &keys, &mut spans);
    }
    setting_values(text, &mut spans);
    parameter_values(text, secrets, &mut spans);
    words(text, &mut spans);
    if secrets.sensitive {
        literal_echoes(text, &secrets.grams, &mut spans);
        json_context(text, &mut spans);
        if input_error {
            quoted(text, &mut spans);
        }
    }
    apply(text, spans)
}

/// The bound parameters a statement passes as secret arguments (1-based),
/// sorted, without duplicates.
pub fn secret_params(statement_text: &str) -> Vec<usize> {
    statement(statement_text, false).1.params
}

/// `text` with every recognised secret replaced, or None when nothing was.
/// `params` are the secret parameter numbers (`secret_params` of the
/// statement the text is about).
pub fn redact(text: &str, params: &[usize]) -> Option<String> {
    field(text, &Secrets::with_params(params), false)
}

// --- The scanner -----------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Ident,
    /// `"name"` (or `U&"name"`).
    QIdent,
    /// A string literal: plain, E'', U&'', B'', X'', N''.
    Str,
    /// `$tag$...$tag$`.
    Dollar,
    /// `$n`.
    Param(usize),
    /// `=>`
    Arrow,
    /// `:=`
    Assign,
    /// `::`
    Cast,
    Punct(u8),
    Other,
}

#[derive(Clone, Copy, Debug)]
struct Tok {
    kind: Kind,
    /// The whole token.
    s: usize,
    e: usize,
    /// Its contents (inside the quotes for strings and quoted names).
    cs: usize,
    ce: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A statement: strict (an unterminated token fails), `EXECUTE` hides
    /// its statement's arguments.
    Statement,
    /// Any other text: loose (an unterminated token runs to the end).
    Field,
}

struct Lexer<'a> {
    b: &'a [u8],
    text: &'a str,
    i: usize,
    backslash_quotes: bool,
    /// A token ran to the end of the text unterminated.
    unterminated: bool,
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

fn is_tag(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str, backslash_quotes: bool) -> Self {
        Lexer {
            b: text.as_bytes(),
            text,
            i: 0,
            backslash_quotes,
            unterminated: false,
        }
    }

    fn at(&self, i: usize) -> u8 {
        self.b.get(i).copied().unwrap_or(0)
    }

    fn tok(&self, kind: Kind, s: usize, e: usize) -> Tok {
        Tok {
            kind,
            s,
            e,
            cs: s,
            ce: e,
        }
    }

    /// The string literal whose opening quote is at `q` (token from `s`).
    fn string(&mut self, s: usize, q: usize, escapes: bool) -> Tok {
        let mut j = q + 1;
        while j < self.b.len() {
            match self.b[j] {
                b'\\' if escapes => j += 2,
                b'\'' if self.at(j + 1) == b'\'' => j += 2,
                b'\'' => {
                    self.i = j + 1;
                    return Tok {
                        kind: Kind::Str,
                        s,
                        e: j + 1,
                        cs: q + 1,
                        ce: j,
                    };
                }
                _ => j += 1,
            }
        }
        self.end_unterminated(Kind::Str, s, q + 1)
    }

    /// The quoted name whose opening quote is at `q` (token from `s`).
    fn quoted_ident(&mut self, s: usize, q: usize) -> Tok {
        let mut j = q + 1;
        while j < self.b.len() {
            if self.b[j] == b'"' {
                if self.at(j + 1) == b'"' {
                    j += 2;
                    continue;
                }
                self.i = j + 1;
                return Tok {
                    kind: Kind::QIdent,
                    s,
                    e: j + 1,
                    cs: q + 1,
                    ce: j,
                };
            }
            j += 1;
        }
        self.end_unterminated(Kind::QIdent, s, q + 1)
    }

    fn end_unterminated(&mut self, kind: Kind, s: usize, cs: usize) -> Tok {
        let n = self.b.len();
        self.i = n;
        self.unterminated = true;
        Tok {
            kind,
            s,
            e: n,
            cs: cs.min(n),
            ce: n,
        }
    }

    /// `$n`, `$tag$...$tag$`, or a lone `$`.
    fn dollar(&mut self) -> Tok {
        let s = self.i;
        if self.at(s + 1).is_ascii_digit() {
            let mut j = s + 1;
            let mut n: usize = 0;
            while self.at(j).is_ascii_digit() {
                n = n
                    .saturating_mul(10)
                    .saturating_add(usize::from(self.b[j] - b'0'));
                j += 1;
            }
            self.i = j;
            return self.tok(Kind::Param(n), s, j);
        }
        let mut j = s + 1;
        while j < self.b.len() && is_tag(self.b[j]) {
            j += 1;
        }
        if self.at(j) != b'$' {
            self.i = s + 1;
            return self.tok(Kind::Other, s, s + 1);
        }
        let open_end = j + 1;
        let tag = self.text.get(s..open_end).unwrap_or("$$");
        match self.text.get(open_end..).and_then(|rest| rest.find(tag)) {
            Some(k) => {
                let close = open_end + k;
                self.i = close + tag.len();
                Tok {
                    kind: Kind::Dollar,
                    s,
                    e: self.i,
                    cs: open_end,
                    ce: close,
                }
            }
            None => self.end_unterminated(Kind::Dollar, s, open_end),
        }
    }

    fn next(&mut self) -> Option<Tok> {
        loop {
            while self.i < self.b.len() && self.b[self.i].is_ascii_whitespace() {
                self.i += 1;
            }
            let s = self.i;
            let c = *self.b.get(s)?;
            let c1 = self.at(s + 1);
            match c {
                b'-' if c1 == b'-' => {
                    while self.i < self.b.len() && self.b[self.i] != b'\n' {
                        self.i += 1;
                    }
                }
                b'/' if c1 == b'*' => {
                    // Block comments nest.
                    let mut depth = 0usize;
                    let mut j = s;
                    loop {
                        if j >= self.b.len() {
                            self.unterminated = true;
                            self.i = j;
                            return None;
                        }
                        if self.b[j] == b'/' && self.at(j + 1) == b'*' {
                            depth += 1;
                            j += 2;
                        } else if self.b[j] == b'*' && self.at(j + 1) == b'/' {
                            depth -= 1;
                            j += 2;
                            if depth == 0 {
                                break;
                            }
                        } else {
                            j += 1;
                        }
                    }
                    self.i = j;
                }
                b'\'' => return Some(self.string(s, s, self.backslash_quotes)),
                b'"' => return Some(self.quoted_ident(s, s)),
                b'$' => return Some(self.dollar()),
                b'E' | b'e' if c1 == b'\'' => return Some(self.string(s, s + 1, true)),
                b'B' | b'b' | b'X' | b'x' | b'N' | b'n' if c1 == b'\'' => {
                    return Some(self.string(s, s + 1, self.backslash_quotes))
                }
                b'U' | b'u' if c1 == b'&' && self.at(s + 2) == b'\'' => {
                    return Some(self.string(s, s + 2, self.backslash_quotes))
                }
                b'U' | b'u' if c1 == b'&' && self.at(s + 2) == b'"' => {
                    return Some(self.quoted_ident(s, s + 2))
                }
                c if is_ident_start(c) => {
                    let mut j = s;
                    while j < self.b.len() && is_ident(self.b[j]) {
                        j += 1;
                    }
                    self.i = j;
                    return Some(self.tok(Kind::Ident, s, j));
                }
                c if c.is_ascii_digit() => {
                    let mut j = s;
                    while j < self.b.len()
                        && (self.b[j].is_ascii_alphanumeric() || matches!(self.b[j], b'_' | b'.'))
                    {
                        j += 1;
                    }
                    self.i = j;
                    return Some(self.tok(Kind::Other, s, j));
                }
                b'=' if c1 == b'>' => {
                    self.i = s + 2;
                    return Some(self.tok(Kind::Arrow, s, s + 2));
                }
                b':' if c1 == b'=' => {
                    self.i = s + 2;
                    return Some(self.tok(Kind::Assign, s, s + 2));
                }
                b':' if c1 == b':' => {
                    self.i = s + 2;
                    return Some(self.tok(Kind::Cast, s, s + 2));
                }
                c => {
                    // ASCII here (bytes >= 0x80 start identifiers).
                    self.i = s + 1;
                    return Some(self.tok(Kind::Punct(c), s, s + 1));
                }
            }
        }
    }
}

/// A call being scanned: which of its arguments are secret.
#[derive(Clone, Copy)]
enum Callee {
    /// Brackets, or a call of anything else.
    Plain,
    /// One of SECRET_ARGS.
    Secret(usize),
    /// set_config(name, value, local): the value is secret unless the name is
    /// a plain literal (a literal naming a secret setting makes the whole
    /// statement sensitive anyway).
    SetConfig,
}

struct Frame {
    callee: Callee,
    /// 0-based index of the current argument.
    arg: usize,
    /// Tokens seen in the current argument.
    arg_len: usize,
    /// The first argument was one plain string literal (set_config).
    first_is_literal: bool,
    /// The current argument is secret.
    secret: bool,
}

impl Frame {
    fn positional_secret(&self) -> bool {
        match self.callee {
            Callee::Plain => false,
            Callee::Secret(k) => SECRET_ARGS
                .get(k)
                .is_some_and(|(_, pos, _)| pos.contains(&(self.arg + 1))),
            Callee::SetConfig => self.arg == 1 && !self.first_is_literal,
        }
    }
}

struct Scan {
    /// Spans to replace.
    spans: Vec<(usize, usize)>,
    /// Every string literal's token (for fail-closed masking, JSON bodies and
    /// the index of a sensitive statement's literals).
    literals: Vec<Tok>,
    secrets: Secrets,
}

fn name_of<'t>(text: &'t str, t: &Tok) -> &'t str {
    text.get(t.cs..t.ce).unwrap_or("")
}

fn is_name(t: &Tok) -> bool {
    matches!(t.kind, Kind::Ident | Kind::QIdent)
}

fn secret_function(name: &str) -> Option<usize> {
    SECRET_ARGS
        .iter()
        .position(|(n, _, _)| n.eq_ignore_ascii_case(name))
}

/// Where the (lowercased) text names a secret-taking function (as a whole
/// word: `authenticated`, the role, is not `authenticate`) or setting: the
/// spans, sorted. One pass per name over the whole text.
fn mentions(lower: &str) -> Vec<(usize, usize)> {
    let b = lower.as_bytes();
    let mut out = Vec::new();
    for (n, _, _) in SECRET_ARGS {
        for (at, _) in lower.match_indices(n) {
            let before = at.checked_sub(1).and_then(|k| b.get(k)).copied();
            let after = b.get(at + n.len()).copied();
            if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
                && !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'$')
            {
                out.push((at, at + n.len()));
            }
        }
    }
    for w in SETTING_WORDS {
        out.extend(lower.match_indices(w).map(|(at, _)| (at, at + w.len())));
    }
    out.sort_unstable();
    out
}

/// Does one of `mentions` lie within `s..e`?
fn mentioned(mentions: &[(usize, usize)], s: usize, e: usize) -> bool {
    let k = mentions.partition_point(|m| m.0 < s);
    mentions.get(k).is_some_and(|m| m.1 <= e)
}

/// One pass over `text`. None: Mode::Statement and a token ran unterminated.
fn scan(text: &str, backslash_quotes: bool, mode: Mode) -> Option<Scan> {
    let lower = text.to_ascii_lowercase();
    let named = mentions(&lower);
    let mut lx = Lexer::new(text, backslash_quotes);
    let mut out = Scan {
        spans: Vec::new(),
        literals: Vec::new(),
        secrets: Secrets::default(),
    };
    let mut mask_all = false;
    let mut stack: Vec<Frame> = Vec::new();
    // Frames whose current argument is secret.
    let mut secret_depth = 0usize;
    // The last two tokens, and the position (token count) of the last $n.
    let mut prev: Option<Tok> = None;
    let mut prev2: Option<Tok> = None;
    let mut count = 0usize;
    let mut last_param: Option<(usize, usize)> = None;
    let mut seen_params: Vec<usize> = Vec::new();
    // SET identity.<secret> = value: the value's span so far.
    let mut setting_pending = false;
    let mut setting_value: Option<(usize, usize)> = None;
    let mut setting_active = false;

    while let Some(t) = lx.next() {
        count += 1;
        // The value of a secret setting runs to the next `;`.
        if setting_active {
            if t.kind == Kind::Punct(b';') {
                if let Some(v) = setting_value.take() {
                    out.spans.push(v);
                }
                setting_active = false;
            } else {
                setting_value = Some((setting_value.map_or(t.s, |v| v.0), t.e));
            }
        } else if setting_pending {
            setting_pending = false;
            let to = t.kind == Kind::Ident && name_of(text, &t).eq_ignore_ascii_case("to");
            if t.kind == Kind::Punct(b'=') || to {
                setting_active = true;
                setting_value = None;
            }
        }
        match t.kind {
            Kind::Punct(b'(') | Kind::Punct(b'[') => {
                let callee = match prev {
                    Some(p) if t.kind == Kind::Punct(b'(') && is_name(&p) => {
                        let n = name_of(text, &p);
                        if let Some(k) = secret_function(n) {
                            out.secrets.sensitive = true;
                            Callee::Secret(k)
                        } else if n.eq_ignore_ascii_case("set_config") {
                            Callee::SetConfig
                        } else {
                            Callee::Plain
                        }
                    }
                    _ => Callee::Plain,
                };
                if let Some(top) = stack.last_mut() {
                    top.arg_len += 1;
                }
                let mut f = Frame {
                    callee,
                    arg: 0,
                    arg_len: 0,
                    first_is_literal: false,
                    secret: false,
                };
                f.secret = f.positional_secret();
                if f.secret {
                    secret_depth += 1;
                }
                stack.push(f);
            }
            Kind::Punct(b')') | Kind::Punct(b']') => {
                if let Some(f) = stack.pop() {
                    if f.secret {
                        secret_depth -= 1;
                    }
                }
            }
            Kind::Punct(b',') if !stack.is_empty() => {
                if let Some(f) = stack.last_mut() {
                    if f.secret {
                        secret_depth -= 1;
                    }
                    if f.arg == 0 {
                        f.first_is_literal = f.arg_len == 1
                            && prev.is_some_and(|p| {
                                p.kind == Kind::Str && text.as_bytes().get(p.s) == Some(&b'\'')
                            });
                    }
                    f.arg += 1;
                    f.arg_len = 0;
                    f.secret = f.positional_secret();
                    if f.secret {
                        secret_depth += 1;
                    }
                }
            }
            Kind::Arrow | Kind::Assign => {
                if let Some(f) = stack.last_mut() {
                    // `name => value`, `VARIADIC name := value`.
                    let named = match (f.arg_len, prev, prev2) {
                        (1, Some(p), _) if is_name(&p) => Some(p),
                        (2, Some(p), Some(v))
                            if is_name(&p)
                                && v.kind == Kind::Ident
                                && name_of(text, &v).eq_ignore_ascii_case("variadic") =>
                        {
                            Some(p)
                        }
                        _ => None,
                    };
                    if let (Some(p), Callee::Secret(k)) = (named, f.callee) {
                        if f.secret {
                            secret_depth -= 1;
                        }
                        let n = name_of(text, &p);
                        f.secret = SECRET_ARGS.get(k).is_some_and(|(_, _, names)| {
                            names.iter().any(|x| x.eq_ignore_ascii_case(n))
                        });
                        if f.secret {
                            secret_depth += 1;
                        }
                    }
                    f.arg_len += 1;
                }
            }
            _ => {
                if let Some(f) = stack.last_mut() {
                    f.arg_len += 1;
                }
            }
        }
        match t.kind {
            Kind::Str | Kind::Dollar => {
                out.literals.push(t);
                if secret_depth > 0 {
                    out.spans.push((t.s, t.e));
                }
                if mentioned(&named, t.cs, t.ce) {
                    // Our calls where the scanner cannot follow them.
                    mask_all = true;
                }
            }
            Kind::Param(n) => {
                seen_params.push(n);
                if secret_depth > 0 {
                    out.secrets.params.push(n);
                }
                last_param = Some((n, count));
            }
            Kind::QIdent | Kind::Ident => {
                let n = name_of(text, &t);
                let nl = lower.get(t.cs..t.ce).unwrap_or("");
                if t.kind == Kind::QIdent
                    && secret_function(n).is_none()
                    && !SECRET_SETTINGS
                        .iter()
                        .any(|s| s.strip_prefix("identity.") == Some(nl))
                    && mentioned(&named, t.cs, t.ce)
                {
                    // A quoted text holding our call (a message's `SQL
                    // statement "..."`): masked whole.
                    out.spans.push((t.s, t.e));
                    out.secrets.sensitive = true;
                    if mode == Mode::Statement {
                        mask_all = true;
                    }
                }
                if secret_function(n).is_some() {
                    out.secrets.sensitive = true;
                }
                if mode == Mode::Statement && t.kind == Kind::Ident && nl == "execute" {
                    // EXECUTE name(args): the prepared statement is unknown here.
                    mask_all = true;
                }
                if let (Some(dot), Some(owner)) = (prev, prev2) {
                    if dot.kind == Kind::Punct(b'.') && is_name(&owner) {
                        let o = name_of(text, &owner);
                        if secret_depth > 0 && o.eq_ignore_ascii_case("pgrst_body") {
                            let key = n.to_string();
                            if !out.secrets.json_keys.contains(&key) {
                                out.secrets.json_keys.push(key);
                            }
                        }
                        if o.eq_ignore_ascii_case("identity")
                            && SECRET_SETTINGS
                                .iter()
                                .any(|s| s.strip_prefix("identity.") == Some(nl))
                        {
                            out.secrets.sensitive = true;
                            setting_pending = true;
                        }
                    }
                }
                if nl == "json_data"
                    && prev.is_some_and(|p| {
                        p.kind == Kind::Ident && name_of(text, &p).eq_ignore_ascii_case("as")
                    })
                {
                    if let Some((n, at)) = last_param {
                        if count - at <= 4 {
                            out.secrets.body_params.push(n);
                        }
                    }
                }
            }
            _ => {}
        }
        prev2 = prev;
        prev = Some(t);
    }
    if let Some(v) = setting_value.take() {
        out.spans.push(v);
    }
    if mode == Mode::Statement && lx.unterminated {
        return None;
    }
    if mask_all {
        out.secrets.sensitive = true;
        out.secrets.all_params = true;
        out.secrets.params = seen_params;
        out.spans.extend(out.literals.iter().map(|t| (t.s, t.e)));
    }
    if stack
        .iter()
        .any(|f| matches!(f.callee, Callee::SetConfig) && f.arg == 0)
    {
        // set_config( cut short: fail closed.
        out.secrets.sensitive = true;
    }
    out.secrets.params.sort_unstable();
    out.secrets.params.dedup();
    out.secrets.body_params.sort_unstable();
    out.secrets.body_params.dedup();
    Some(out)
}

/// Indexes the 8-byte windows of a sensitive statement's string literals.
fn index_literals(text: &str, literals: &[Tok], s: &mut Secrets) {
    s.sensitive = true;
    let b = text.as_bytes();
    let total: usize = literals.iter().map(|t| t.ce.saturating_sub(t.cs)).sum();
    if total > MAX_INDEXED {
        s.too_many_literals = true;
        return;
    }
    let grams = Arc::make_mut(&mut s.grams);
    for t in literals {
        if let Some(body) = b.get(t.cs..t.ce) {
            grams.extend(body.windows(GRAM).map(gram));
        }
    }
}

/// Indexes all of a statement the report will not log.
fn index_whole(text: &str, s: &mut Secrets) {
    let whole = Tok {
        kind: Kind::Str,
        s: 0,
        e: text.len(),
        cs: 0,
        ce: text.len(),
    };
    s.grams = Grams::default();
    index_literals(text, &[whole], s);
}

fn gram(w: &[u8]) -> u64 {
    let mut a = [0u8; GRAM];
    for (d, s) in a.iter_mut().zip(w) {
        *d = *s;
    }
    u64::from_le_bytes(a)
}

/// Runs of a message that repeat 8 or more bytes of a literal of the
/// sensitive statement (`syntax error at or near "'sk-...'"`, a JSON error's
/// context, any echo of the input).
fn literal_echoes(
    text: &str,
    grams: &HashSet<u64, foldhash::fast::FixedState>,
    spans: &mut Vec<(usize, usize)>,
) {
    if grams.is_empty() {
        return;
    }
    for (i, w) in text.as_bytes().windows(GRAM).enumerate() {
        if grams.contains(&gram(w)) {
            match spans.last_mut() {
                Some(last) if last.1 >= i && last.0 <= i => last.1 = last.1.max(i + GRAM),
                _ => spans.push((i, i + GRAM)),
            }
        }
    }
}

/// `JSON data, line n: ...` (the CONTEXT of a JSON input error): the rest of
/// the line.
fn json_context(text: &str, spans: &mut Vec<(usize, usize)>) {
    const P: &str = "JSON data, line ";
    let b = text.as_bytes();
    for (at, _) in text.match_indices(P) {
        let mut j = at + P.len();
        while b.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        if b.get(j) == Some(&b':') {
            j += 1;
            let e = b[j..]
                .iter()
                .position(|&c| c == b'\n')
                .map_or(b.len(), |k| j + k);
            if e > j {
                spans.push((j, e));
            }
        }
    }
}

/// Every quoted part (`"..."`, `'...'`) of the text.
fn quoted(text: &str, spans: &mut Vec<(usize, usize)>) {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let q = b[i];
        if q != b'"' && q != b'\'' {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        let mut end = b.len();
        while j < b.len() {
            if b[j] == q {
                if b.get(j + 1) == Some(&q) {
                    j += 2;
                    continue;
                }
                end = j + 1;
                break;
            }
            j += 1;
        }
        spans.push((i, end));
        i = end;
    }
}

/// JSON literals of the statement when a PostgREST body reference made keys
/// secret: those keys' values (the whole literal if it is not JSON, or not a
/// plain string literal).
fn json_literals(text: &str, literals: &[Tok], keys: &[String], spans: &mut Vec<(usize, usize)>) {
    if keys.is_empty() {
        return;
    }
    let b = text.as_bytes();
    for t in literals {
        let body = b.get(t.cs..t.ce).unwrap_or(&[]);
        let first = body.iter().find(|c| !c.is_ascii_whitespace());
        if !matches!(first, Some(b'{') | Some(b'[')) {
            continue;
        }
        let plain = b.get(t.s) == Some(&b'\'');
        match plain.then(|| json_secrets(b, t.cs, t.ce, keys)).flatten() {
            Some(found) => spans.extend(found),
            None => spans.push((t.s, t.e)),
        }
    }
}

// --- Bound parameters ------------------------------------------------------

/// `$n = '...'` lists (Postgres' `parameters: $1 = 'text', $2 = NULL`, the
/// value quoted with '' for a quote): each secret parameter's value.
fn parameter_values(text: &str, s: &Secrets, spans: &mut Vec<(usize, usize)>) {
    if !s.all_params && s.params.is_empty() && s.json_keys.is_empty() {
        return;
    }
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        let mut n: usize = 0;
        while b.get(j).is_some_and(u8::is_ascii_digit) {
            n = n
                .saturating_mul(10)
                .saturating_add(usize::from(b[j] - b'0'));
            j += 1;
        }
        if j == i + 1 || b.get(j..j + 4) != Some(b" = '".as_slice()) {
            i = j.max(i + 1);
            continue;
        }
        let q = j + 3;
        // The closing quote ('' is a quote); unterminated: to the end.
        let mut k = q + 1;
        let mut close = None;
        while k < b.len() {
            if b[k] == b'\'' {
                if b.get(k + 1) == Some(&b'\'') {
                    k += 2;
                    continue;
                }
                close = Some(k);
                break;
            }
            k += 1;
        }
        let ce = close.unwrap_or(b.len());
        let whole = s.all_params || s.params.binary_search(&n).is_ok();
        let body = !s.json_keys.is_empty()
            && (s.body_params.is_empty() || s.body_params.binary_search(&n).is_ok());
        if whole {
            spans.push((q + 1, ce));
        } else if body {
            match json_secrets(b, q + 1, ce, &s.json_keys) {
                Some(found) => spans.extend(found),
                // Not JSON (malformed, truncated): all of it.
                None => spans.push((q + 1, ce)),
            }
        }
        i = ce + 1;
    }
}

// --- JSON bodies -----------------------------------------------------------

/// The spans of the values of `keys` (at any depth) in the JSON text
/// `b[s..e]`, itself inside a SQL string literal (a `'` is written `''`).
/// None: not JSON (fail closed: the caller masks all of it).
fn json_secrets(b: &[u8], s: usize, e: usize, keys: &[String]) -> Option<Vec<(usize, usize)>> {
    let mut p = Json {
        b: b.get(..e)?,
        i: s,
        keys,
        out: Vec::new(),
    };
    p.value(0)?;
    p.ws();
    (p.i == e).then_some(p.out)
}

struct Json<'a> {
    b: &'a [u8],
    i: usize,
    keys: &'a [String],
    out: Vec<(usize, usize)>,
}

const MAX_JSON_DEPTH: usize = 256;

impl Json<'_> {
    fn ws(&mut self) {
        while self
            .b
            .get(self.i)
            .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
        {
            self.i += 1;
        }
    }

    fn value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_JSON_DEPTH {
            return None;
        }
        self.ws();
        match *self.b.get(self.i)? {
            b'{' => {
                self.i += 1;
                self.ws();
                if self.b.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.ws();
                    let key = self.string()?;
                    self.ws();
                    if self.b.get(self.i) != Some(&b':') {
                        return None;
                    }
                    self.i += 1;
                    self.ws();
                    let vs = self.i;
                    self.value(depth + 1)?;
                    if self.keys.iter().any(|k| k.eq_ignore_ascii_case(&key)) {
                        self.out.push((vs, self.i));
                    }
                    self.ws();
                    match *self.b.get(self.i)? {
                        b',' => self.i += 1,
                        b'}' => {
                            self.i += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b'[' => {
                self.i += 1;
                self.ws();
                if self.b.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.value(depth + 1)?;
                    self.ws();
                    match *self.b.get(self.i)? {
                        b',' => self.i += 1,
                        b']' => {
                            self.i += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b'"' => self.string().map(|_| ()),
            _ => {
                let s = self.i;
                while self
                    .b
                    .get(self.i)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
                {
                    self.i += 1;
                }
                (self.i > s).then_some(())
            }
        }
    }

    /// A JSON string at `i`, decoded (enough to compare keys).
    fn string(&mut self) -> Option<String> {
        if self.b.get(self.i) != Some(&b'"') {
            return None;
        }
        self.i += 1;
        let mut out: Vec<u8> = Vec::new();
        let mut pending_high: Option<u32> = None;
        loop {
            let c = *self.b.get(self.i)?;
            match c {
                b'"' => {
                    self.i += 1;
                    return Some(String::from_utf8_lossy(&out).into_owned());
                }
                b'\'' => {
                    // Inside a SQL literal a quote is doubled.
                    if self.b.get(self.i + 1) != Some(&b'\'') {
                        return None;
                    }
                    out.push(b'\'');
                    self.i += 2;
                }
                b'\\' => {
                    let e = *self.b.get(self.i + 1)?;
                    self.i += 2;
                    let ch = match e {
                        b'"' | b'\\' | b'/' => Some(e as char),
                        b'b' => Some('\u{8}'),
                        b'f' => Some('\u{c}'),
                        b'n' => Some('\n'),
                        b'r' => Some('\r'),
                        b't' => Some('\t'),
                        b'u' => {
                            let hex = self.b.get(self.i..self.i + 4)?;
                            let hex = std::str::from_utf8(hex).ok()?;
                            let v = u32::from_str_radix(hex, 16).ok()?;
                            self.i += 4;
                            if (0xD800..0xDC00).contains(&v) {
                                pending_high = Some(v);
                                None
                            } else if (0xDC00..0xE000).contains(&v) {
                                let hi = pending_high.take()?;
                                char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (v - 0xDC00))
                            } else {
                                Some(char::from_u32(v)?)
                            }
                        }
                        _ => return None,
                    };
                    if let Some(ch) = ch {
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                    }
                }
                _ => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }
}

// --- Settings and shapes ---------------------------------------------------

/// `identity.<secret> = value`, `... TO value`, and Postgres' `parameter
/// "identity.<secret>": "value"`: the value (to the end of a quoted value,
/// or of the word).
fn setting_values(text: &str, spans: &mut Vec<(usize, usize)>) {
    let lower = text.to_ascii_lowercase();
    let b = text.as_bytes();
    for name in SECRET_SETTINGS {
        for (at, _) in lower.match_indices(name) {
            let mut j = at + name.len();
            // A quoted name in set_config('...'): the call's own rule.
            if at > 0 && b.get(at - 1) == Some(&b'\'') {
                continue;
            }
            if b.get(j) == Some(&b'"') {
                j += 1;
            }
            while b.get(j).is_some_and(|c| *c == b' ' || *c == b'\t') {
                j += 1;
            }
            let rest = lower.get(j..).unwrap_or("");
            let op = if rest.starts_with('=') || rest.starts_with(':') {
                1
            } else if rest.starts_with("to ") || rest.starts_with("to\t") {
                2
            } else {
                continue;
            };
            j += op;
            while b.get(j).is_some_and(u8::is_ascii_whitespace) {
                j += 1;
            }
            let end = match b.get(j) {
                Some(&q @ (b'\'' | b'"')) => {
                    let mut k = j + 1;
                    loop {
                        match b.get(k) {
                            None => break b.len(),
                            Some(&c) if c == q && b.get(k + 1) == Some(&q) => k += 2,
                            Some(&c) if c == q => break k + 1,
                            Some(b'\\') => k += 2,
                            Some(_) => k += 1,
                        }
                    }
                    .min(b.len())
                }
                Some(_) => {
                    let mut k = j;
                    while b
                        .get(k)
                        .is_some_and(|c| !c.is_ascii_whitespace() && *c != b';')
                    {
                        k += 1;
                    }
                    k
                }
                None => j,
            };
            if end > j {
                spans.push((j, end));
            }
        }
    }
}

/// API tokens, JWTs and Svix webhook secrets (`whsec_` and base64)
/// anywhere in the text, as whole words.
fn words(text: &str, spans: &mut Vec<(usize, usize)>) {
    let b = text.as_bytes();
    for (s, _) in text.match_indices("whsec_") {
        let e = s
            + 6
            + b.get(s + 6..)
                .unwrap_or(&[])
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'='))
                .count();
        spans.push((s, e));
    }
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.';
    let mut i = 0;
    while i < b.len() {
        if !word(b[i]) {
            i += 1;
            continue;
        }
        let s = i;
        while i < b.len() && word(b[i]) {
            i += 1;
        }
        let Some(w) = text.get(s..i) else { continue };
        if is_jwt(w) {
            spans.push((s, i));
            continue;
        }
        // A token may be followed by '.' (end of a sentence) or sit inside a
        // dotted word: check each dot-free part.
        let mut off = s;
        for part in w.split('.') {
            let p = part.trim_matches('-');
            if p.len() >= 38 && looks_like_token(p) {
                let ps = off + (part.len() - part.trim_start_matches('-').len());
                spans.push((ps, ps + p.len()));
            }
            off += part.len() + 1;
        }
    }
}

/// Three base64url segments, the first a JSON object's encoding.
fn is_jwt(w: &str) -> bool {
    let mut parts = w.split('.');
    let (Some(h), Some(p), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let b64url = |s: &str| {
        s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    };
    h.starts_with("eyJ") && h.len() >= 8 && p.len() >= 2 && b64url(h) && b64url(p) && b64url(sig)
}

/// The text with the spans replaced by REDACTED (merged; widened to
/// character boundaries), or None when there are none.
fn apply(text: &str, mut spans: Vec<(usize, usize)>) -> Option<String> {
    spans.retain(|(s, e)| e > s);
    if spans.is_empty() {
        return None;
    }
    spans.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (s, e) in spans {
        let mut s = s.min(text.len()).max(at);
        let mut e = e.min(text.len());
        if e <= s {
            continue;
        }
        while s > at && !text.is_char_boundary(s) {
            s -= 1;
        }
        while e < text.len() && !text.is_char_boundary(e) {
            e += 1;
        }
        out.push_str(text.get(at..s).unwrap_or(""));
        out.push_str(REDACTED);
        at = e;
    }
    out.push_str(text.get(at..).unwrap_or(""));
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "idt_0123456789ABCDEFGHIJabcdefghij";

    fn token() -> String {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        crate::token::generate("idt", &mut rng).unwrap()
    }
    use rand::SeedableRng;

    const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLWJ5dGVz";

    #[test]
    fn webhook_secrets_are_redacted_anywhere() {
        let line = r#"statement: select identity.register_issuer('i', null, '{"webhook_secret": "whsec_Mf+Q9/8GKYqr=="}')"#;
        let out = redact(line, &[]).unwrap();
        assert!(!out.contains("Mf+Q9") && !out.contains("whsec_M"), "{out}");
        let plain = redact("the secret whsec_AbC+/= leaked", &[]).unwrap();
        assert_eq!(plain, "the secret [redacted] leaked");
    }

    #[test]
    fn tokens_and_jwts_are_redacted_anywhere() {
        let t = token();
        let msg = format!("statement: select identity.verify_api_token('{t}'), '{JWT}'");
        let r = redact(&msg, &[]).unwrap();
        assert!(!r.contains(&t) && !r.contains(JWT), "{r}");
        assert!(r.contains(REDACTED));
        // A near miss (wrong checksum) is not a token; ordinary text is kept.
        let mut bad = t.clone();
        bad.pop();
        bad.push(if t.ends_with('A') { 'B' } else { 'A' });
        let plain = format!("invalid API token {bad} for user_id 42");
        assert_eq!(redact(&plain, &[]), None);
        let _ = TOKEN;
    }

    #[test]
    fn secret_arguments_are_redacted_by_position_and_by_name() {
        let s =
            "select identity.create_credential('openrouter', 'main', 'sk-or-v1-secret-0001', true)";
        let r = redact(s, &[]).unwrap();
        assert!(
            !r.contains("sk-or-v1-secret-0001")
                && r.contains("'openrouter'")
                && r.contains("'main'"),
            "{r}"
        );
        let s = "SELECT \"identity\".\"create_system_credential\"(user_id => $1, provider => 'x', secret => E'sk-or-v1-it''s\\'s')";
        let r = redact(s, &[]).unwrap();
        assert!(!r.contains("sk-or-v1-it"), "{r}");
        let s = "select identity.update_credential('00000000-0000-0000-0000-000000000001', '{\"secret\": \"sk-or-v1-new\"}'::jsonb)";
        let r = redact(s, &[]).unwrap();
        assert!(
            !r.contains("sk-or-v1-new") && r.contains("00000000-0000-0000-0000-000000000001"),
            "{r}"
        );
        let s = "select identity.create_credential('p', 'n', $$sk-or-v1-dollar$$)";
        assert!(!redact(s, &[]).unwrap().contains("sk-or-v1-dollar"));
    }

    #[test]
    fn bound_secret_parameters_are_found_and_their_values_redacted() {
        let stmt = "select identity.create_credential($1, $2, $3::text, true, $4)";
        assert_eq!(secret_params(stmt), vec![3]);
        assert_eq!(
            secret_params("select * from identity.verify_api_token($1) v"),
            vec![1]
        );
        assert_eq!(
            secret_params("select * from identity.try_verify_api_token($1) v"),
            vec![1]
        );
        assert_eq!(
            secret_params("select * from identity.try_verify_api_token(token => $1)"),
            vec![1]
        );
        assert_eq!(
            secret_params("select identity.create_api_token($1, $2)"),
            Vec::<usize>::new()
        );
        let detail =
            "parameters: $1 = 'openrouter', $2 = 'main', $3 = 'sk-or-v1-it''s-secret', $4 = NULL";
        let r = redact(detail, &[3]).unwrap();
        assert_eq!(
            r,
            "parameters: $1 = 'openrouter', $2 = 'main', $3 = '[redacted]', $4 = NULL"
        );
        let ctx = "unnamed portal with parameters: $1 = 'sk-or-v1-x'";
        assert_eq!(
            redact(ctx, &[1]).unwrap(),
            "unnamed portal with parameters: $1 = '[redacted]'"
        );
    }

    #[test]
    fn secret_settings_are_redacted_in_set_and_set_config() {
        for s in [
            "set identity.jwt_secret = 'a-very-secret-value-0123456789abcdef'",
            "SET identity.encryption_key TO 'a-very-secret-value-0123456789abcdef'",
            "alter system set identity.jwt_secret = 'a-very-secret-value-0123456789abcdef'",
            "select set_config('identity.previous_encryption_keys', 'a-very-secret-value-0123456789abcdef', false)",
            "select pg_catalog.set_config('identity.encryption_key', $q$a-very-secret-value-0123456789abcdef$q$, false)",
        ] {
            let r = redact(s, &[]).unwrap_or_else(|| s.to_string());
            assert!(!r.contains("a-very-secret-value"), "{s} -> {r}");
        }
        assert_eq!(redact("set identity.jwt_leeway = 30", &[]), None);
        assert_eq!(
            secret_params("select set_config('identity.jwt_secret', $1, false)"),
            vec![1]
        );
    }

    #[test]
    fn nothing_else_changes() {
        for s in [
            "duration: 0.123 ms  statement: select 1",
            "relation \"identity.users\" does not exist",
            "select identity.uid(), identity.create_api_token('00000000-0000-0000-0000-000000000001', 'name')",
        ] {
            assert_eq!(redact(s, &[]), None, "{s}");
        }
    }
}

/// Issue 30, items 4 and 5: leaks, failing open, and time.
#[cfg(test)]
mod fail_closed {
    use super::*;
    use std::time::{Duration, Instant};

    /// What the hook does with one report: the statement (debug_query_string)
    /// and each of the report's texts (message, detail, context, ...).
    /// `sqlstate`: the report's ("00000" for a LOG line).
    fn report(stmt: &str, fields: &[&str], sqlstate: &str) -> (String, Vec<String>) {
        let (s, mut secrets) = statement_for(stmt, false, sqlstate);
        for f in fields {
            secrets.merge(sql_secrets(f, false));
        }
        let out = fields
            .iter()
            .map(|f| field(f, &secrets, input_error(sqlstate)).unwrap_or_else(|| f.to_string()))
            .collect();
        (s.unwrap_or_else(|| stmt.to_string()), out)
    }

    fn assert_hidden(secret: &str, stmt: &str, fields: &[&str], sqlstate: &str) {
        let (s, out) = report(stmt, fields, sqlstate);
        assert!(!s.contains(secret), "STATEMENT leaks {secret}: {s}");
        for f in &out {
            assert!(
                !f.contains(secret),
                "a field leaks {secret}: {f}\n(statement {stmt})"
            );
        }
    }

    /// PostgREST's RPC statement (PostgREST 12, callPlanToQuery with key
    /// params): the whole body is one bound parameter.
    fn pgrst(schema_fn: &str, args: &[(&str, &str)], scalar: bool) -> String {
        let cols: Vec<String> = args.iter().map(|(n, _)| format!("\"{n}\"")).collect();
        let types: Vec<String> = args.iter().map(|(n, t)| format!("\"{n}\" {t}")).collect();
        let call: Vec<String> = args
            .iter()
            .map(|(n, _)| format!("\"{n}\" := pgrst_body.\"{n}\""))
            .collect();
        let call = format!("{schema_fn}({})", call.join(", "));
        let from = if scalar {
            format!("LATERAL (SELECT {call} pgrst_scalar) pgrst_call")
        } else {
            format!("LATERAL {call} pgrst_call")
        };
        format!(
            "WITH pgrst_source AS (SELECT {} FROM (SELECT $1 AS json_data) pgrst_payload, \
             LATERAL (SELECT {} FROM json_to_record(pgrst_payload.json_data) AS _({}) LIMIT 1) pgrst_body , {from}) \
             SELECT null::bigint AS total_result_set, pg_catalog.count(_postgrest_t) AS page_total, \
             coalesce((json_agg(_postgrest_t.pgrst_scalar)->0)::text, 'null') AS body, \
             nullif(current_setting('response.headers', true), '') AS response_headers, \
             nullif(current_setting('response.status', true), '') AS response_status, '' AS response_inserted \
             FROM (SELECT \"pgrst_call\".* FROM \"pgrst_source\" AS \"pgrst_call\") _postgrest_t",
            if scalar { "pgrst_call.pgrst_scalar" } else { "\"pgrst_call\".*" },
            cols.join(", "),
            types.join(", ")
        )
    }

    const CRED_ARGS: &[(&str, &str)] = &[
        ("provider", "text"),
        ("name", "text"),
        ("secret", "text"),
        ("is_default", "boolean"),
    ];

    #[test]
    fn postgrest_rpc_body_values_of_secret_arguments_are_redacted() {
        let secret = "sk-or-v1-pgrst-body-0001";
        for scalar in [false, true] {
            let stmt = pgrst("\"identity\".\"create_credential\"", CRED_ARGS, scalar);
            let (_, secrets) = statement(&stmt, false);
            assert_eq!(secrets.json_keys(), ["secret"], "{stmt}");
            for body in [
                format!(
                    r#"{{"provider":"openrouter","name":"main","secret":"{secret}","is_default":true}}"#
                ),
                format!(r#"[{{"provider":"openrouter","name":"main","secret":"{secret}"}}]"#),
                format!(r#"{{"provider":"openrouter","s\u0065cret":"{secret}"}}"#),
                format!(r#"{{"provider":"openrouter","secret":"x","secret":"{secret}"}}"#),
                format!(r#"{{"provider":"it''s","secret":"{secret}''s"}}"#),
                format!(r#"{{"provider":"openrouter","secret":{{"nested":"{secret}"}}}}"#),
                // Malformed, or cut by log_parameter_max_length: all of it.
                format!(r#"{{"provider":"openrouter","secret":{secret}}}"#),
                format!(r#"{{"provider":"openrouter","secret":"{secret}"..."#),
            ] {
                let detail = format!("parameters: $1 = '{body}'");
                let (_, out) = report(&stmt, &[&detail], "00000");
                assert!(!out[0].contains(secret), "{out:?}");
                if body.starts_with(r#"{"provider":"openrouter","name""#) {
                    assert!(
                        out[0].contains("openrouter"),
                        "other keys are kept: {out:?}"
                    );
                }
            }
        }
        // The token of verify_api_token through /rpc, and the same body
        // inlined as a literal.
        let stmt = pgrst(
            "\"identity\".\"verify_api_token\"",
            &[("token", "text")],
            true,
        );
        assert_hidden(
            "idt-looking-secret-value-0002",
            &stmt,
            &[r#"parameters: $1 = '{"token": "idt-looking-secret-value-0002"}'"#],
            "00000",
        );
        let inline = stmt.replace(
            "$1 AS json_data",
            r#"'{"token": "idt-looking-secret-value-0003"}'::json AS json_data"#,
        );
        assert_hidden("idt-looking-secret-value-0003", &inline, &[], "00000");
        // A malformed body: Postgres' own error quotes it.
        let stmt = pgrst("\"identity\".\"create_credential\"", CRED_ARGS, false);
        assert_hidden(
            "sk-or-v1-pgrst-bad-0004",
            &stmt,
            &[
                "invalid input syntax for type json",
                "Token \"sk-or-v1-pgrst-bad-0004\" is invalid.",
                "JSON data, line 1: {\"name\":\"main\",\"secret\":sk-or-v1-pgrst-bad-0004\nunnamed portal parameter $1 = '{\"name\":\"main\",\"secret\":sk-or-v1-pgrst-bad-0004}'",
            ],
            "22P02",
        );
    }

    #[test]
    fn postgres_messages_quoting_a_literal_of_a_secret_call_are_redacted() {
        // A syntax error quotes the literal at or near it.
        let stmt = "select identity.create_credential('openrouter', 'main' 'sk-or-v1-syntax-0001')";
        assert_hidden(
            "sk-or-v1-syntax-0001",
            stmt,
            &["syntax error at or near \"'sk-or-v1-syntax-0001'\""],
            "42601",
        );
        // The message alone, whatever the SQLSTATE says.
        let (_, out) = report(stmt, &["at or near \"'sk-or-v1-syntax-0001'\""], "00000");
        assert!(!out[0].contains("sk-or-v1-syntax-0001"), "{out:?}");
        // A malformed JSON literal: DETAIL and CONTEXT quote it.
        let stmt = "select identity.update_credential('00000000-0000-0000-0000-000000000001', '{\"secret\": \"sk-or-v1-json-0002\", }')";
        assert_hidden(
            "sk-or-v1-json-0002",
            stmt,
            &[
                "invalid input syntax for type json",
                "Expected string, but found \"}\".",
                "JSON data, line 1: {\"secret\": \"sk-or-v1-json-0002\", }",
            ],
            "22P02",
        );
        // A secret bound to the wrong type: the input error quotes it.
        assert_hidden(
            "sk-or-v1-bound-0003",
            "select identity.create_system_credential($1, 'openrouter', $2)",
            &["invalid input syntax for type uuid: \"sk-or-v1-bound-0003\""],
            "22P02",
        );
    }

    #[test]
    fn comments_inside_a_call_do_not_hide_it() {
        for (stmt, secret) in [
            ("select identity.create_credential/**/('openrouter', 'main', 'sk-or-v1-comment-0001')", "sk-or-v1-comment-0001"),
            ("select identity.create_credential -- x\n ('p', 'n', 'sk-or-v1-comment-0002')", "sk-or-v1-comment-0002"),
            ("select identity./* a */create_credential('p', /* , */ 'n', 'sk-or-v1-comment-0003')", "sk-or-v1-comment-0003"),
            ("select identity.create_credential('p', 'n' -- ,\n, 'sk-or-v1-comment-0004')", "sk-or-v1-comment-0004"),
            ("select identity.create_credential /* /* nested */ ( */ ('p', 'n', 'sk-or-v1-comment-0005')", "sk-or-v1-comment-0005"),
        ] {
            assert_hidden(secret, stmt, &[&format!("statement: {stmt}")], "00000");
        }
        assert_eq!(
            secret_params("select identity.create_credential/**/($1, $2, $3)"),
            vec![3]
        );
        assert_eq!(
            secret_params("select identity.create_credential($1, /* $9, */ $2, $3)"),
            vec![3]
        );
    }

    #[test]
    fn an_expression_around_a_parameter_still_marks_it() {
        for (stmt, want) in [
            ("select identity.create_credential($1, $2, trim($3))", vec![3]),
            ("select identity.create_credential($1, $2, ($3)::text)", vec![3]),
            ("select identity.create_credential($1, $2, coalesce($3, $4))", vec![3, 4]),
            ("select identity.create_credential($1, $2, cast($3 as text))", vec![3]),
            ("select identity.create_credential(provider => $1, name => $2, secret => lower($5))", vec![5]),
            ("select identity.verify_jwt(nullif(btrim($1), ''), $2)", vec![1]),
        ] {
            assert_eq!(secret_params(stmt), want, "{stmt}");
        }
        let detail = "parameters: $1 = 'openrouter', $2 = 'main', $3 = 'sk-or-v1-trim-0001'";
        assert_hidden(
            "sk-or-v1-trim-0001",
            "select identity.create_credential($1, $2, trim($3))",
            &[detail],
            "00000",
        );
    }

    #[test]
    fn prepare_and_execute_are_redacted() {
        assert_eq!(
            secret_params(
                "PREPARE p(text, text, text) AS select identity.create_credential($1, $2, $3)"
            ),
            vec![3]
        );
        let stmt = "EXECUTE p('openrouter', 'main', 'sk-or-v1-execute-0001')";
        assert_hidden(
            "sk-or-v1-execute-0001",
            stmt,
            &[
                &format!("statement: {stmt}"),
                "prepare: PREPARE p(text, text, text) AS select identity.create_credential($1, $2, $3)",
            ],
            "00000",
        );
        let stmt = "explain analyze execute p($1, $2, $3)";
        assert_hidden(
            "sk-or-v1-execute-0002",
            stmt,
            &["parameters: $1 = 'a', $2 = 'b', $3 = 'sk-or-v1-execute-0002'"],
            "00000",
        );
    }

    #[test]
    fn an_unreadable_statement_is_not_logged_and_its_parameters_are_dropped() {
        for stmt in [
            // An E'' string ending in a backslash (the scanner used to slice
            // past the end and panic, and the hook logged it unredacted).
            "select identity.verify_jwt(E'sk-or-v1-backslash-0001\\",
            "select identity.verify_jwt(E'sk-or-v1-backslash-0001\\')",
            "select identity.create_credential('p', 'n', 'sk-or-v1-backslash-0001",
            "select identity.create_credential('p', 'n', $$sk-or-v1-backslash-0001)",
            "select identity.create_credential('p', 'n', $q$sk-or-v1-backslash-0001$$)",
            "select 1 /* select identity.create_credential('p', 'n', 'sk-or-v1-backslash-0001') ",
            "select \"identity.create_credential('p', 'n', 'sk-or-v1-backslash-0001')",
        ] {
            let (s, secrets) = statement(stmt, false);
            assert_eq!(s.as_deref(), Some(NOT_LOGGED), "{stmt}");
            assert!(secrets.all_params(), "{stmt}");
            assert_hidden(
                "sk-or-v1-backslash-0001",
                stmt,
                &[
                    "parameters: $1 = 'sk-or-v1-backslash-0001', $2 = 'sk-or-v1-backslash-0001'",
                    "unterminated quoted string at or near \"'sk-or-v1-backslash-0001\"",
                    &format!("statement: {stmt}"),
                ],
                "42601",
            );
            // Unreadable is unreadable, whatever the report.
            assert_hidden(
                "sk-or-v1-backslash-0001",
                stmt,
                &[&format!("statement: {stmt}")],
                "00000",
            );
        }
        // With standard_conforming_strings off, `\'` escapes in every string.
        let stmt = "select identity.create_credential('p', 'n\\', ''x', 'sk-or-v1-scs-0002')";
        let (s, _) = statement(stmt, true);
        assert!(!s.unwrap_or_default().contains("sk-or-v1-scs-0002"));
    }

    #[test]
    fn dynamic_sql_naming_a_secret_function_is_redacted_whole() {
        for (stmt, secret) in [
            ("DO $$begin perform identity.create_credential('p', 'n', 'sk-or-v1-do-0001'); end$$", "sk-or-v1-do-0001"),
            ("DO 'begin perform identity.create_credential(''p'', ''n'', ''sk-or-v1-do-0002''); end'", "sk-or-v1-do-0002"),
            ("DO $q$begin execute format('select identity.create_credential(%L, %L, %L)', 'p', 'n', 'sk-or-v1-do-0003'); end$q$", "sk-or-v1-do-0003"),
            ("select format('select identity.create_credential(%L, %L, %L)', 'p', 'n', 'sk-or-v1-do-0004')", "sk-or-v1-do-0004"),
            ("select pg_catalog.set_config('identity.encryption_key', $q$sk-or-v1-do-0005-0123456789abcdef$q$, false)", "sk-or-v1-do-0005"),
        ] {
            assert_hidden(
                secret,
                stmt,
                &[
                    &format!("statement: {stmt}"),
                    &format!("SQL statement \"select identity.create_credential('p', 'n', '{secret}')\""),
                ],
                "00000",
            );
        }
        // A role named like a function (authenticated) is not a mention.
        let (s, secrets) = statement(
            "select identity.grant_access('authenticated', 'user')",
            false,
        );
        assert_eq!(s, None);
        assert!(!secrets.all_params());
    }

    #[test]
    fn secret_settings_in_every_form_are_redacted() {
        for (stmt, fields) in [
            ("set \"identity\".\"jwt_secret\" = 'a-very-secret-value-0123456789abcdef'", vec![]),
            ("SET identity.jwt_secret TO E'a-very-secret-value-0123456789abcdef\\'x'", vec![]),
            ("alter role r set identity.encryption_key = 'a-very-secret-value-0123456789abcdef'", vec![]),
            (
                "select set_config($1, $2, false)",
                vec!["parameters: $1 = 'identity.jwt_secret', $2 = 'a-very-secret-value-0123456789abcdef'"],
            ),
            (
                "select 1",
                vec!["invalid value for parameter \"identity.jwt_secret\": \"a-very-secret-value-0123456789abcdef\""],
            ),
        ] {
            assert_hidden("a-very-secret-value", stmt, &fields, "22023");
        }
    }

    #[test]
    fn texts_of_other_statements_keep_their_words() {
        for (stmt, msg) in [
            ("select 1/0", "division by zero"),
            ("select * from x", "relation \"x\" does not exist"),
            (
                "select 'it''s'::int",
                "invalid input syntax for type integer: \"it's\"",
            ),
        ] {
            let (s, out) = report(stmt, &[msg], "22P02");
            assert_eq!((s.as_str(), out[0].as_str()), (stmt, msg));
        }
        let (s, out) = report(
            "select identity.create_credential($1, $2, $3)",
            &["parameters: $1 = 'openrouter', $2 = 'main', $3 = 'sk-or-v1-kept-0001'"],
            "00000",
        );
        assert_eq!(s, "select identity.create_credential($1, $2, $3)");
        assert_eq!(
            out[0],
            "parameters: $1 = 'openrouter', $2 = 'main', $3 = '[redacted]'"
        );
    }

    /// The statements of item 5: a login sends megabytes of these.
    fn adversarial(len: usize) -> Vec<(&'static str, String)> {
        let fill = |unit: &str| {
            unit.repeat(len / unit.len() + 1)
                .get(..len)
                .unwrap_or("")
                .to_string()
        };
        vec![
            ("comments", fill("select 1/0 /* verify_jwt( ")),
            ("closed comments", fill("select 1/0 /* verify_jwt( */ ")),
            ("calls", fill("verify_jwt(")),
            ("arguments", fill("verify_jwt('a', ")),
            (
                "literals",
                format!(
                    "select identity.verify_jwt('x') {}",
                    fill("'sk-or-v1-many', ").get(40..).unwrap_or("")
                ),
            ),
            ("dollars", fill("$a$ $b$ verify_jwt( ")),
            ("settings", fill("identity.jwt_secret = ")),
            ("parameters", fill("$1 = 'a', ")),
            ("words", fill("eyJhbGciOiJIUzI1NiJ9.eyJ.")),
        ]
    }

    fn timed(what: &str, f: impl FnOnce()) -> Duration {
        let t = Instant::now();
        f();
        let d = t.elapsed();
        println!("redact timing: {what}: {d:?}");
        d
    }

    #[test]
    fn sixteen_megabytes_are_refused_at_once() {
        for (what, text) in adversarial(16 << 20) {
            let d = timed(&format!("16 MB {what}"), || {
                let (s, secrets) = statement(&text, false);
                assert_eq!(s.as_deref(), Some(NOT_LOGGED));
                let f = field(&text, &secrets, true);
                assert_eq!(f.as_deref(), Some(NOT_LOGGED));
            });
            assert!(d < Duration::from_secs(1), "{what}: {d:?}");
        }
    }

    #[test]
    fn just_under_the_bound_the_scan_is_linear() {
        for (what, text) in adversarial(MAX_SCAN - 1) {
            let d = timed(&format!("1 MB {what}"), || {
                let (s, mut secrets) = statement(&text, false);
                secrets.merge(sql_secrets(&text, false));
                let _ = (s, field(&text, &secrets, true));
            });
            assert!(d < Duration::from_secs(10), "{what}: {d:?}");
        }
    }

    use proptest::prelude::*;

    proptest! {
        #[test]
        fn never_panics(
            s in "[a-zA-Z_$'\"\\\\ ()/*,;:=>.\\-0-9\n\u{e9}\u{20ac}\u{1f600}]{0,120}",
            scs in any::<bool>(),
            ie in any::<bool>(),
        ) {
            for text in [
                s.clone(),
                format!("select identity.create_credential({s}"),
                format!("select identity.verify_jwt(E'{s}"),
                format!("parameters: $1 = '{s}"),
                format!("JSON data, line 1: {s}"),
            ] {
                let (out, mut secrets) = statement(&text, scs);
                secrets.merge(sql_secrets(&text, scs));
                let _ = out;
                let _ = field(&text, &secrets, ie);
                let _ = field(&text, &Secrets::with_params(&[1]), ie);
            }
        }
    }
}
