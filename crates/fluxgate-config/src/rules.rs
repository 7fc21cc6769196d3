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
            Value::Ratio(r) => write!(f, "{r:?}"),
            Value::Duration(d) => f.write_str(&format_duration(*d)),
        }
    }
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
}
