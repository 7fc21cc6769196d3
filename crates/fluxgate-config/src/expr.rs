//! The expression language of `tripper` and `tracker` fields: the code's own operators,
//! read from a string.
//!
//! ```text
//! expr    = and { "|" and }            lowest precedence
//! and     = unary { "&" unary }
//! unary   = "!" unary | primary        highest precedence
//! primary = "(" expr ")" | NAME [ "(" [ arg { "," arg } ] ")" ]
//! arg     = a number (20, 0.5, 1e-5) or a duration (1s, 500ms, 1h30m)
//! ```
//!
//! `!` binds tighter than `&`, which binds tighter than `|` (as in Rust), so
//! `a | b & !c` is `a | (b & (!c))`. A hand-written recursive-descent parser: small, no
//! dependency, and every error names the column (1-based, in characters) where it found
//! the problem.
//!
//! An expression has at most [`MAX_TERMS`] terms and nests `(` and `!` at most 64 deep,
//! so that no tree it parses into is deep enough to exhaust a stack when it is walked or
//! when the tripper built from it is evaluated.

use std::fmt;

/// The deepest nesting of parentheses and `!` an expression may have; deeper input is an
/// error rather than a stack overflow.
const MAX_DEPTH: usize = 64;

/// The most terms (rules or tracker names) one expression may have; a longer one is an
/// error at the column of the first term too many.
///
/// `MAX_DEPTH` alone does not bound the tree: a flat chain `a & a & a …` nests nothing,
/// yet parses into a left-deep tree as deep as the chain is long, and every walk of that
/// tree recurses — `try_map`, the fold that builds the tripper or tracker, `Display`,
/// `Drop`, and above all the built tripper's or tracker's `And`/`Or`, which run on every
/// call, on the caller's thread, whatever its stack. With at most `MAX_TERMS` leaves a
/// tree has at most `MAX_TERMS - 1` `&`/`|` nodes, and a path from its root crosses at
/// most `MAX_DEPTH` `!` nodes (each `!` on a path is nested in the ones above it, and the
/// parser counted them), so no tree is deeper than `MAX_DEPTH + MAX_TERMS` = 128 levels.
/// Evaluating the deepest takes a few kilobytes of stack; loading it about 270 KiB in a
/// debug build (65 KiB optimised), well within a thread's default 2 MiB. 256 terms would
/// allow trees 2.5 times as deep for no use: 64 is far more than a readable tripper
/// (which may hold at most 8 distinct `SlowRate` thresholds anyway) or tracker needs, and
/// an application that tracks dozens of error kinds can register them under one name
/// ([`Trackers::add_tracker`](crate::Trackers::add_tracker)).
pub const MAX_TERMS: usize = 64;

/// An expression tree over leaves `L` (a tripper rule, a tracker name).
///
/// ```
/// use fluxgate_config::expr::{parse, Expr};
/// let e = parse("a | b & !c").unwrap();
/// assert_eq!(e.to_string(), "a | b & !c");
/// assert!(matches!(e, Expr::Or(..)));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Expr<L> {
    /// A rule or a name.
    Leaf(L),
    /// `!a`
    Not(Box<Expr<L>>),
    /// `a & b`
    And(Box<Expr<L>>, Box<Expr<L>>),
    /// `a | b`
    Or(Box<Expr<L>>, Box<Expr<L>>),
}

impl<L> Expr<L> {
    /// Turns every leaf into another, stopping at the first error.
    ///
    /// ```
    /// let e = fluxgate_config::expr::parse("a & b").unwrap();
    /// let upper = e.try_map(&mut |c| Ok::<_, ()>(c.name.to_uppercase())).unwrap();
    /// assert_eq!(upper.to_string(), "A & B");
    /// ```
    pub fn try_map<M, E>(&self, f: &mut impl FnMut(&L) -> Result<M, E>) -> Result<Expr<M>, E> {
        Ok(match self {
            Expr::Leaf(l) => Expr::Leaf(f(l)?),
            Expr::Not(a) => Expr::Not(Box::new(a.try_map(f)?)),
            Expr::And(a, b) => Expr::And(Box::new(a.try_map(f)?), Box::new(b.try_map(f)?)),
            Expr::Or(a, b) => Expr::Or(Box::new(a.try_map(f)?), Box::new(b.try_map(f)?)),
        })
    }

    /// Folds the tree bottom-up: `leaf` for leaves, then the three combinators.
    pub(crate) fn fold<T>(
        &self,
        leaf: &mut impl FnMut(&L) -> T,
        not: &impl Fn(T) -> T,
        and: &impl Fn(T, T) -> T,
        or: &impl Fn(T, T) -> T,
    ) -> T {
        match self {
            Expr::Leaf(l) => leaf(l),
            Expr::Not(a) => not(a.fold(leaf, not, and, or)),
            Expr::And(a, b) => {
                let a = a.fold(leaf, not, and, or);
                and(a, b.fold(leaf, not, and, or))
            }
            Expr::Or(a, b) => {
                let a = a.fold(leaf, not, and, or);
                or(a, b.fold(leaf, not, and, or))
            }
        }
    }

    fn precedence(&self) -> u8 {
        match self {
            Expr::Or(..) => 1,
            Expr::And(..) => 2,
            Expr::Not(_) | Expr::Leaf(_) => 3,
        }
    }
}

/// Prints the expression with the parentheses it needs and no more, so that
/// `parse(e.to_string())` gives `e` back.
impl<L: fmt::Display> fmt::Display for Expr<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = |f: &mut fmt::Formatter<'_>, e: &Expr<L>, min: u8| {
            if e.precedence() < min {
                write!(f, "({e})")
            } else {
                write!(f, "{e}")
            }
        };
        match self {
            Expr::Leaf(l) => l.fmt(f),
            Expr::Not(a) => {
                f.write_str("!")?;
                side(f, a, 3)
            }
            // Left-associative: a right operand of the same precedence needs parentheses
            // to keep its grouping.
            Expr::And(a, b) => {
                side(f, a, 2)?;
                f.write_str(" & ")?;
                side(f, b, 3)
            }
            Expr::Or(a, b) => {
                side(f, a, 1)?;
                f.write_str(" | ")?;
                side(f, b, 2)
            }
        }
    }
}

/// A leaf as written: a name, and its arguments when it has parentheses.
///
/// ```
/// let e = fluxgate_config::expr::parse("SlowRate(0.3, 1s)").unwrap();
/// let fluxgate_config::expr::Expr::Leaf(call) = e else { unreachable!() };
/// assert_eq!(call.name, "SlowRate");
/// assert_eq!(call.args.unwrap().iter().map(|a| a.text.as_str()).collect::<Vec<_>>(), ["0.3", "1s"]);
/// ```
#[derive(Debug, Clone)]
pub struct Call {
    /// The name.
    pub name: String,
    /// Its column (1-based).
    pub column: usize,
    /// The arguments, `None` when the name has no parentheses.
    pub args: Option<Vec<Arg>>,
    /// The column of the closing parenthesis (or of the name's end without one).
    pub end_column: usize,
}

/// One argument as written.
///
/// ```
/// let e = fluxgate_config::expr::parse("MinRequests(20)").unwrap();
/// # let fluxgate_config::expr::Expr::Leaf(call) = e else { unreachable!() };
/// assert_eq!(call.args.unwrap()[0].column, 13);
/// ```
#[derive(Debug, Clone)]
pub struct Arg {
    /// The text (`20`, `0.5`, `1s`).
    pub text: String,
    /// Its column (1-based).
    pub column: usize,
}

/// Calls compare as written, whatever their columns.
impl PartialEq for Call {
    fn eq(&self, other: &Call) -> bool {
        self.name == other.name && self.args == other.args
    }
}

/// Arguments compare as written, whatever their columns.
impl PartialEq for Arg {
    fn eq(&self, other: &Arg) -> bool {
        self.text == other.text
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(args) = &self.args {
            f.write_str("(")?;
            for (i, a) in args.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                f.write_str(&a.text)?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A syntax or meaning error at a column of the expression.
///
/// ```
/// let err = fluxgate_config::expr::parse("a & (b | c").unwrap_err();
/// assert_eq!(err.column, 11);
/// assert_eq!(err.to_string(), "column 11: expected ')' to close the '(' at column 5, found the end");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong there.
    pub message: String,
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "column {}: {}", self.column, self.message)
    }
}

impl std::error::Error for ExprError {}

pub(crate) fn err<T>(column: usize, message: impl Into<String>) -> Result<T, ExprError> {
    Err(ExprError {
        column,
        message: message.into(),
    })
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Atom(String),
    Open,
    Close,
    Comma,
    And,
    Or,
    Not,
    End,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Name(n) => write!(f, "'{n}'"),
            Tok::Atom(a) => write!(f, "'{a}'"),
            Tok::Open => f.write_str("'('"),
            Tok::Close => f.write_str("')'"),
            Tok::Comma => f.write_str("','"),
            Tok::And => f.write_str("'&'"),
            Tok::Or => f.write_str("'|'"),
            Tok::Not => f.write_str("'!'"),
            Tok::End => f.write_str("the end"),
        }
    }
}

fn lex(text: &str) -> Result<Vec<(Tok, usize)>, ExprError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        let single = match c {
            '(' => Some(Tok::Open),
            ')' => Some(Tok::Close),
            ',' => Some(Tok::Comma),
            '&' => Some(Tok::And),
            '|' => Some(Tok::Or),
            '!' => Some(Tok::Not),
            _ => None,
        };
        if let Some(t) = single {
            if matches!(t, Tok::And | Tok::Or) && chars.get(i + 1) == Some(&c) {
                return err(col, format!("write '{c}', not '{c}{c}'"));
            }
            out.push((t, col));
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '-' | '.' | ':'))
            {
                i += 1;
            }
            out.push((Tok::Name(chars[start..i].iter().collect()), col));
        } else if c.is_ascii_digit() || matches!(c, '.' | '-' | '+') {
            let start = i;
            i += 1;
            while i < chars.len() {
                if chars[i].is_alphanumeric() || matches!(chars[i], '.' | '_') {
                    i += 1;
                } else if exponent_sign(&chars[start..i], &chars[i..]) {
                    // `1e-5`, `2.5E+3`: the exponent's sign is part of the number.
                    i += 2;
                } else {
                    break;
                }
            }
            out.push((Tok::Atom(chars[start..i].iter().collect()), col));
        } else {
            return err(col, format!("unexpected character '{}'", c.escape_debug()));
        }
    }
    out.push((Tok::End, chars.len() + 1));
    Ok(out)
}

/// Whether `rest` starts with the sign of an exponent of the number `atom` (read so far):
/// `atom` is a decimal mantissa and an `e` or `E` (`1e`, `-2.5E`, `.5e`), and `rest` a
/// sign and a digit. Durations never have a sign after a letter, so `1e-5` is the only
/// way to read such text.
fn exponent_sign(atom: &[char], rest: &[char]) -> bool {
    let [mantissa @ .., 'e' | 'E'] = atom else {
        return false;
    };
    let digits = match mantissa {
        ['-' | '+', m @ ..] => m,
        m => m,
    };
    let points = digits.iter().filter(|&&c| c == '.').count();
    matches!(rest, ['-' | '+', d, ..] if d.is_ascii_digit())
        && digits.iter().any(char::is_ascii_digit)
        && digits.iter().all(|c| c.is_ascii_digit() || *c == '.')
        && points <= 1
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    depth: usize,
    /// Terms (names) read so far, at most [`MAX_TERMS`].
    terms: usize,
}

impl Parser {
    fn peek(&self) -> &(Tok, usize) {
        // `lex` always ends the list with `End`, and `pos` never moves past it.
        &self.toks[self.pos.min(self.toks.len() - 1)]
    }

    fn bump(&mut self) -> (Tok, usize) {
        let t = self.peek().clone();
        if t.0 != Tok::End {
            self.pos += 1;
        }
        t
    }

    fn deeper(&mut self, column: usize) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return err(column, format!("nested deeper than {MAX_DEPTH} levels"));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr<Call>, ExprError> {
        let mut left = self.and()?;
        while self.peek().0 == Tok::Or {
            self.bump();
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr<Call>, ExprError> {
        let mut left = self.unary()?;
        while self.peek().0 == Tok::And {
            self.bump();
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    // `unary`, `and` and `or` recurse once per `(` or `!` (at most `MAX_DEPTH` deep):
    // what they do besides is left to functions that do not recurse, so that their
    // frames stay small (a debug build gives every local of a function its own slot).

    fn unary(&mut self) -> Result<Expr<Call>, ExprError> {
        let (tok, col) = self.bump();
        match tok {
            Tok::Not => {
                self.deeper(col)?;
                let inner = self.unary()?;
                self.depth -= 1;
                Ok(Expr::Not(Box::new(inner)))
            }
            Tok::Open => {
                self.deeper(col)?;
                let inner = self.or()?;
                self.depth -= 1;
                self.close(col)?;
                Ok(inner)
            }
            Tok::Name(name) => self.call(name, col),
            t => Err(expected_a_term(t, col)),
        }
    }

    /// The `)` of the `(` at column `open`.
    fn close(&mut self, open: usize) -> Result<(), ExprError> {
        match self.bump() {
            (Tok::Close, _) => Ok(()),
            (t, c) => err(
                c,
                format!("expected ')' to close the '(' at column {open}, found {t}"),
            ),
        }
    }

    /// A name at column `col`, and its arguments if it has parentheses.
    fn call(&mut self, name: String, col: usize) -> Result<Expr<Call>, ExprError> {
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return err(
                col,
                format!("more than {MAX_TERMS} terms (rules or names) in one expression"),
            );
        }
        let mut end_column = col + name.chars().count() - 1;
        let args = if self.peek().0 == Tok::Open {
            self.bump();
            let mut args = Vec::new();
            if self.peek().0 == Tok::Close {
                end_column = self.bump().1;
            } else {
                loop {
                    match self.bump() {
                        (Tok::Atom(text), column) => args.push(Arg { text, column }),
                        (t, c) => {
                            return err(
                                c,
                                format!(
                                    "expected a number or a duration as an argument of {name}, found {t}"
                                ),
                            );
                        }
                    }
                    match self.bump() {
                        (Tok::Comma, _) => {}
                        (Tok::Close, c) => {
                            end_column = c;
                            break;
                        }
                        (t, c) => {
                            return err(
                                c,
                                format!(
                                    "expected ',' or ')' in the arguments of {name}, found {t}"
                                ),
                            );
                        }
                    }
                }
            }
            Some(args)
        } else {
            None
        };
        Ok(Expr::Leaf(Call {
            name,
            column: col,
            args,
            end_column,
        }))
    }
}

/// The error for a token where a term should start.
fn expected_a_term(t: Tok, col: usize) -> ExprError {
    ExprError {
        column: col,
        message: match t {
            Tok::End => "expected a name, '(' or '!', found the end".to_owned(),
            t => format!("expected a name, '(' or '!', found {t}"),
        },
    }
}

/// Parses an expression into a tree of calls.
///
/// ```
/// use fluxgate_config::expr::parse;
/// let e = parse("MinRequests(20) & (FailureRate(0.5) | SlowRate(0.3, 1s))").unwrap();
/// assert_eq!(e.to_string(), "MinRequests(20) & (FailureRate(0.5) | SlowRate(0.3, 1s))");
/// assert_eq!(parse("a &").unwrap_err().column, 4);
/// ```
pub fn parse(text: &str) -> Result<Expr<Call>, ExprError> {
    let toks = lex(text)?;
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
        terms: 0,
    };
    let e = p.or()?;
    match p.bump() {
        (Tok::End, _) => Ok(e),
        (t, c) => err(c, format!("expected '&', '|' or the end, found {t}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(s: &str) -> String {
        parse(s).unwrap().to_string()
    }

    #[test]
    fn precedence_is_not_then_and_then_or() {
        assert_eq!(round("a | b & c"), "a | b & c");
        assert_eq!(parse("a | b & c").unwrap(), parse("a | (b & c)").unwrap());
        assert_eq!(parse("!a & b").unwrap(), parse("(!a) & b").unwrap());
        assert_eq!(round("(a | b) & c"), "(a | b) & c");
        assert_eq!(round("!(a | b)"), "!(a | b)");
        assert_eq!(round("a & (b & c)"), "a & (b & c)");
        assert_eq!(round("((a))"), "a");
        assert_eq!(round("!!a"), "!!a");
    }

    #[test]
    fn errors_point_at_the_column() {
        assert_eq!(parse("").unwrap_err().column, 1);
        assert_eq!(parse("a b").unwrap_err().column, 3);
        assert_eq!(parse("a && b").unwrap_err().column, 3);
        assert_eq!(parse("F(1,)").unwrap_err().column, 5);
        assert_eq!(parse("F(1 2)").unwrap_err().column, 5);
        assert_eq!(parse("a # b").unwrap_err().column, 3);
        let deep = "(".repeat(1000);
        assert!(parse(&deep).unwrap_err().message.contains("nested deeper"));
        let nots = "!".repeat(100_000) + "a";
        assert!(parse(&nots).is_err());
    }

    /// The texts of the arguments of a single call.
    fn args(s: &str) -> Vec<String> {
        let Expr::Leaf(call) = parse(s).unwrap() else {
            panic!("{s}: not a call")
        };
        call.args.unwrap().into_iter().map(|a| a.text).collect()
    }

    #[test]
    fn a_number_with_an_exponent_is_one_argument() {
        assert_eq!(args("F(1e-5)"), ["1e-5"]);
        assert_eq!(
            args("F(2.5E+3, -1e-7, +.5e-1, 3.e+2)"),
            ["2.5E+3", "-1e-7", "+.5e-1", "3.e+2"]
        );
        assert_eq!(args("F( 1e5 ,1E-300)"), ["1e5", "1E-300"]);
        assert_eq!(round("F(1e-5) & G(2.5E+3, 1s)"), "F(1e-5) & G(2.5E+3, 1s)");
        // Columns after an exponent are right.
        assert_eq!(parse("F(1e-5 2)").unwrap_err().column, 8);
        // A sign after anything but a mantissa and `e` still starts an argument of its
        // own (an error), as does a sign without a digit after it.
        for (text, column) in [
            ("F(1s-5)", 5),
            ("F(1e-)", 5),
            ("F(1ee-5)", 6),
            ("F(e-5)", 3),
        ] {
            assert_eq!(parse(text).unwrap_err().column, column, "{text}");
        }
    }

    /// The depth of a tree (a leaf is 1).
    fn depth<L>(e: &Expr<L>) -> usize {
        match e {
            Expr::Leaf(_) => 1,
            Expr::Not(a) => 1 + depth(a),
            Expr::And(a, b) | Expr::Or(a, b) => 1 + depth(a).max(depth(b)),
        }
    }

    #[test]
    fn terms_are_bounded_and_so_is_the_depth() {
        let chain = |n: usize, op: &str| vec!["a"; n].join(op);
        for op in [" & ", " | "] {
            assert_eq!(depth(&parse(&chain(MAX_TERMS, op)).unwrap()), MAX_TERMS);
            let err = parse(&chain(MAX_TERMS + 1, op)).unwrap_err();
            assert_eq!(err.column, 4 * MAX_TERMS + 1, "the first term too many");
            assert_eq!(
                err.message,
                "more than 64 terms (rules or names) in one expression"
            );
            assert!(parse(&chain(100_000, op)).is_err());
        }
        // The deepest tree there is: the longest chain, its first term under as many `!`
        // as may nest.
        let deepest = "!".repeat(MAX_DEPTH) + &chain(MAX_TERMS, " & ");
        assert_eq!(depth(&parse(&deepest).unwrap()), MAX_DEPTH + MAX_TERMS);
        assert!(parse(&format!("!{deepest}")).is_err());
        // Terms inside parentheses and under `!` count alike.
        let nested = format!(
            "({}) | !{}",
            chain(MAX_TERMS / 2, " & "),
            chain(MAX_TERMS / 2, " | !")
        );
        assert!(parse(&nested).is_ok());
        assert!(parse(&format!("{nested} | a")).is_err());
    }
}
