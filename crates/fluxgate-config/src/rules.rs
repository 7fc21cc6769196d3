//! Tripper rules by name: the table that turns `FailureRate(0.5)` into
//! `trippers::FailureRate::new(0.5)`. Adding a rule is one entry in [`RULES`].

use std::fmt;
use std::time::Duration;

use fluxgate_core::trippers::{
    self, AvgLatency, Closed, FailureRate, FailureStreak, HalfOpened, MinRequests, SlowRate,
    Tripper,
};

use crate::duration::{format_duration, parse_duration};
use crate::expr::{self, Call, Expr, ExprError, err};

/// The kind of one rule parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    /// A whole number ≥ 0 (`20`).
    Count,
    /// A number (`0.5`).
    Ratio,
    /// A duration (`1s`, `500ms`).
    Duration,
}

/// One argument of a rule, typed by its [`Param`].
///
/// ```
/// use fluxgate_config::rules::Value;
/// assert_eq!(Value::Count(3).count(), 3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// A whole number.
    Count(u64),
    /// A number.
    Ratio(f64),
    /// A duration.
    Duration(Duration),
}

impl Value {
    /// The whole number (0 for another kind; the parser never hands one over).
    ///
    /// ```
    /// assert_eq!(fluxgate_config::rules::Value::Ratio(0.5).count(), 0);
    /// ```
    pub fn count(self) -> u64 {
        match self {
            Value::Count(n) => n,
            _ => 0,
        }
    }
    /// The number (a count as a number; 0 for a duration).
    ///
    /// ```
    /// assert_eq!(fluxgate_config::rules::Value::Count(1).ratio(), 1.0);
    /// ```
    pub fn ratio(self) -> f64 {
        match self {
            Value::Ratio(r) => r,
            Value::Count(n) => n as f64,
            Value::Duration(_) => 0.0,
        }
    }
    /// The duration (zero for another kind).
    ///
    /// ```
    /// use std::time::Duration;
    /// assert_eq!(fluxgate_config::rules::Value::Count(1).duration(), Duration::ZERO);
    /// ```
    pub fn duration(self) -> Duration {
        match self {
            Value::Duration(d) => d,
            _ => Duration::ZERO,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Count(n) => n.fmt(f),
            Value::Ratio(r) => write_ratio(f, *r),
            Value::Duration(d) => f.write_str(&format_duration(*d)),
        }
    }
}

/// Writes a number in plain decimal, never with an exponent, in the fewest digits that
/// read back as the same `f64`: `0.00001`, not `1e-5` (which the lexer reads too, but
/// the printed form is meant to read like the file). A whole number keeps a `.0`
/// (`1.0`), so it reads as a ratio rather than a count. `f64`'s `Display` gives those
/// shortest digits without an exponent, however small or large the number: the smallest
/// subnormal, `5e-324`, prints as `0.` and 323 zeros and `5`, which the parser reads back
/// as itself (such a ratio is valid, if pointless: `FailureRate` accepts any ratio in
/// (0, 1], and one below `1 / total` is reached by a single failure).
///
/// ```
/// use fluxgate_config::rules::Value;
/// assert_eq!(Value::Ratio(1e-5).to_string(), "0.00001");
/// assert_eq!(Value::Ratio(1.0).to_string(), "1.0");
/// assert_eq!(Value::Ratio(0.1 + 0.2).to_string(), "0.30000000000000004");
/// ```
fn write_ratio(f: &mut fmt::Formatter<'_>, r: f64) -> fmt::Result {
    let plain = r.to_string();
    f.write_str(&plain)?;
    // Not finite (`NaN`, `inf`): no parse gives one, but a `Value` can hold one.
    if r.is_finite() && !plain.contains('.') {
        f.write_str(".0")?;
    }
    Ok(())
}

/// A named tripper rule: its parameters and how to build it.
#[derive(Debug)]
pub struct Rule {
    /// The name in expressions (the type's name in the code).
    pub name: &'static str,
    /// Its parameters, in order; a rule without parameters is written without
    /// parentheses (`Closed`), though `Closed()` is accepted too.
    pub params: &'static [Param],
    /// Builds the rule from arguments of the declared kinds.
    pub build: fn(&[Value]) -> Box<dyn Tripper>,
}

/// Every rule an expression may name. One entry per rule.
pub const RULES: &[Rule] = &[
    Rule {
        name: "Closed",
        params: &[],
        build: |_| Box::new(Closed),
    },
    Rule {
        name: "HalfOpened",
        params: &[],
        build: |_| Box::new(HalfOpened),
    },
    Rule {
        name: "MinRequests",
        params: &[Param::Count],
        build: |a| Box::new(MinRequests::new(arg(a, 0).count())),
    },
    Rule {
        name: "FailureRate",
        params: &[Param::Ratio],
        build: |a| Box::new(FailureRate::new(arg(a, 0).ratio())),
    },
    Rule {
        name: "AvgLatency",
        params: &[Param::Duration],
        build: |a| Box::new(AvgLatency::new(arg(a, 0).duration())),
    },
    Rule {
        name: "SlowRate",
        params: &[Param::Ratio, Param::Duration],
        build: |a| Box::new(SlowRate::new(arg(a, 0).ratio(), arg(a, 1).duration())),
    },
    Rule {
        name: "FailureStreak",
        params: &[Param::Count],
        build: |a| Box::new(FailureStreak::new(arg(a, 0).count())),
    },
];

/// A rule with its arguments: one leaf of a tripper expression.
///
/// ```
/// let e = fluxgate_config::rules::parse_tripper("SlowRate(0.3, 1000ms)").unwrap();
/// assert_eq!(e.to_string(), "SlowRate(0.3, 1s)");
/// ```
#[derive(Debug, Clone)]
pub struct RuleCall {
    /// The rule's name (an entry of [`RULES`]).
    pub name: &'static str,
    args: Vec<Value>,
    build: fn(&[Value]) -> Box<dyn Tripper>,
}

impl RuleCall {
    /// Its arguments, typed.
    ///
    /// ```
    /// use fluxgate_config::{expr::Expr, rules::{parse_tripper, Value}};
    /// let Expr::Leaf(call) = parse_tripper("MinRequests(20)").unwrap() else { unreachable!() };
    /// assert_eq!(call.args(), [Value::Count(20)]);
    /// ```
    pub fn args(&self) -> &[Value] {
        &self.args
    }
}

/// Argument `i`, or a zero when missing (the parser hands each rule exactly its
/// parameters, so that never happens; indexing would panic if it did).
///
/// ```
/// use fluxgate_config::rules::{arg, Value};
/// assert_eq!(arg(&[Value::Count(3)], 0), Value::Count(3));
/// assert_eq!(arg(&[], 1), Value::Count(0));
/// ```
pub fn arg(args: &[Value], i: usize) -> Value {
    args.get(i).copied().unwrap_or(Value::Count(0))
}

impl PartialEq for RuleCall {
    fn eq(&self, other: &RuleCall) -> bool {
        self.name == other.name && self.args == other.args
    }
}

impl fmt::Display for RuleCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)?;
        if !self.args.is_empty() {
            f.write_str("(")?;
            for (i, a) in self.args.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                a.fmt(f)?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

fn names() -> String {
    RULES.iter().map(|r| r.name).collect::<Vec<_>>().join(", ")
}

fn typed(call: &Call) -> Result<RuleCall, ExprError> {
    let Some(rule) = RULES.iter().find(|r| r.name == call.name) else {
        return err(
            call.column,
            format!("unknown rule '{}' (known: {})", call.name, names()),
        );
    };
    let args = call.args.as_deref().unwrap_or_default();
    let signature = || {
        let ps: Vec<&str> = rule
            .params
            .iter()
            .map(|p| match p {
                Param::Count => "count",
                Param::Ratio => "ratio",
                Param::Duration => "duration",
            })
            .collect();
        format!("{}({})", rule.name, ps.join(", "))
    };
    if call.args.is_none() && !rule.params.is_empty() {
        return err(
            call.end_column + 1,
            format!("{} needs arguments: {}", rule.name, signature()),
        );
    }
    if args.len() != rule.params.len() {
        let at = args
            .get(rule.params.len())
            .map_or(call.end_column, |a| a.column);
        return err(
            at,
            format!(
                "{} takes {} argument{}, got {}: {}",
                rule.name,
                rule.params.len(),
                if rule.params.len() == 1 { "" } else { "s" },
                args.len(),
                signature()
            ),
        );
    }
    let mut values = Vec::with_capacity(args.len());
    for (arg, param) in args.iter().zip(rule.params) {
        let t = arg.text.as_str();
        let v = match param {
            Param::Count => t
                .parse::<u64>()
                .map(Value::Count)
                .map_err(|_| format!("{} expects a whole number here, got '{t}'", rule.name)),
            Param::Ratio => match t.parse::<f64>() {
                Ok(r) if r.is_finite() => Ok(Value::Ratio(r)),
                _ => Err(format!("{} expects a number here, got '{t}'", rule.name)),
            },
            Param::Duration => parse_duration(t)
                .map(Value::Duration)
                .map_err(|e| format!("{}: {e}", rule.name)),
        };
        match v {
            Ok(v) => values.push(v),
            Err(m) => return err(arg.column, m),
        }
    }
    Ok(RuleCall {
        name: rule.name,
        args: values,
        build: rule.build,
    })
}

/// Parses a tripper expression (`"MinRequests(20) & FailureRate(0.5)"`) into a tree of
/// known rules with typed arguments. Parameter ranges are checked by [`build_tripper`]'s
/// result (`Tripper::validate`), as `build()` checks them.
///
/// ```
/// use fluxgate_config::rules::parse_tripper;
/// assert!(parse_tripper("FailureStreak(5) | (MinRequests(100) & FailureRate(0.5))").is_ok());
/// let err = parse_tripper("MinRequests(20) & FailureRatio(0.5)").unwrap_err();
/// assert_eq!(err.column, 19);
/// assert!(err.message.starts_with("unknown rule 'FailureRatio'"));
/// ```
pub fn parse_tripper(text: &str) -> Result<Expr<RuleCall>, ExprError> {
    expr::parse(text)?.try_map(&mut |c| typed(c))
}

/// Builds the tripper a rule tree describes, as `Box<dyn Tripper>` combinations.
///
/// ```
/// use fluxgate_config::rules::{build_tripper, parse_tripper};
/// use fluxgate_core::trippers::Tripper;
/// let t = build_tripper(&parse_tripper("FailureRate(1.5)").unwrap());
/// assert_eq!(t.validate().unwrap_err().to_string(), "FailureRate ratio must be in (0, 1], got 1.5");
/// ```
pub fn build_tripper(e: &Expr<RuleCall>) -> Box<dyn Tripper> {
    e.fold(
        &mut |c: &RuleCall| (c.build)(&c.args),
        &|a| Box::new(trippers::NotTripper(a)) as Box<dyn Tripper>,
        &|a, b| Box::new(trippers::And(a, b)) as Box<dyn Tripper>,
        &|a, b| Box::new(trippers::Or(a, b)) as Box<dyn Tripper>,
    )
}

/// D-1's tripper, `MinRequests(100) & FailureRate(0.5)`, built without parsing.
pub(crate) fn default_tripper() -> Expr<RuleCall> {
    let leaf = |name, arg, build| {
        Box::new(Expr::Leaf(RuleCall {
            name,
            args: vec![arg],
            build,
        }))
    };
    Expr::And(
        leaf("MinRequests", Value::Count(100), |a| {
            Box::new(MinRequests::new(arg(a, 0).count()))
        }),
        leaf("FailureRate", Value::Ratio(0.5), |a| {
            Box::new(FailureRate::new(arg(a, 0).ratio()))
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_what_the_table_parses() {
        let parsed = parse_tripper("MinRequests(100) & FailureRate(0.5)").unwrap();
        assert_eq!(default_tripper(), parsed);
    }

    /// The ratio `FailureRate(r)` reads back after printing, and the print.
    fn reprint(r: f64) -> (f64, String) {
        let printed = parse_tripper(&format!("FailureRate({})", Value::Ratio(r)))
            .unwrap_or_else(|e| panic!("{r:e}: {e}"))
            .to_string();
        let again = parse_tripper(&printed).unwrap();
        let Expr::Leaf(call) = again else {
            panic!("{printed}")
        };
        (call.args()[0].ratio(), printed)
    }

    /// Digits of a decimal without sign, point, and leading or trailing zeros.
    fn significant(text: &str) -> String {
        let mantissa = text.split(['e', 'E']).next().unwrap_or_default();
        let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
        digits.trim_matches('0').to_owned()
    }

    #[test]
    fn every_ratio_prints_in_plain_decimal_and_reads_back_exactly() {
        // SplitMix64: reproducible without a dependency.
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = move || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let mut ratios = vec![
            1e-5,
            0.00001,
            1e-4,
            0.5,
            1.0,
            0.1 + 0.2,
            1.0 / 3.0,
            f64::EPSILON,
            f64::MIN_POSITIVE,
            5e-324,
            f64::from_bits(1.0f64.to_bits() - 1),
            f64::MAX,
            1e16,
            123_456_789.0,
            -0.25,
            0.0,
        ];
        for _ in 0..300 {
            // Uniform in (0, 1], and uniform over the bit patterns of (0, 1] (every
            // exponent, subnormals included).
            ratios.push(((next() >> 11) + 1) as f64 / (1u64 << 53) as f64);
            ratios.push(f64::from_bits(next() % 1.0f64.to_bits() + 1));
        }
        for r in ratios {
            let (back, printed) = reprint(r);
            assert_eq!(back.to_bits(), r.to_bits(), "{r:e} printed as {printed}");
            let arg = &printed["FailureRate(".len()..printed.len() - 1];
            assert!(!arg.contains(['e', 'E']), "{r:e} printed as {printed}");
            // The shortest: the digits of `{:e}`, which is the shortest with an exponent.
            assert_eq!(
                significant(arg),
                significant(&format!("{r:e}")),
                "{printed}"
            );
            assert!(arg.contains('.'), "{printed}");
        }
        assert_eq!(reprint(1e-5).1, "FailureRate(0.00001)");
        assert_eq!(reprint(2.5e-7).1, "FailureRate(0.00000025)");
        assert_eq!(reprint(1.0).1, "FailureRate(1.0)");
        // The longest: `0.` and 323 zeros before the 5.
        assert_eq!(reprint(5e-324).1.len(), "FailureRate()".len() + 2 + 323 + 1);
        assert_eq!(Value::Ratio(f64::NAN).to_string(), "NaN");
        assert_eq!(Value::Ratio(f64::INFINITY).to_string(), "inf");
    }
}
