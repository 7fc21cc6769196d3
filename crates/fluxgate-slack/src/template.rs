//! What a Slack message says for each kind of transition (SL-2).

use std::collections::HashMap;

use fluxgate_core::State;

/// Title, attachment colour and description of the Slack message for a transition (SL-2).
///
/// The defaults follow the transition: a trip is red, a recovery attempt orange, a recovery
/// green, anything else grey. Replace any of them with
/// [`SlackBuilder::template`](super::SlackBuilder::template). Title and description are
/// Slack `mrkdwn`, so they may hold links or mentions (`<!here>`).
///
/// ```
/// use fluxgate_slack::Template;
/// use fluxgate_core::State;
///
/// let trip = Template::for_transition(State::Closed, State::Open);
/// assert_eq!(trip.title(), "🚨 Circuit Breaker Triggered");
/// assert_eq!(trip.color(), "#FF4C4C");
/// assert_eq!(trip.description(), "The request failure rate exceeded the threshold.");
///
/// let mine = Template::new("<!here> payments are failing", "#FF0000", "Runbook: <https://wiki/pay|pay>");
/// assert_eq!(mine.color(), "#FF0000");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Template {
    title: String,
    color: String,
    description: String,
}

impl Template {
    /// A template with its title, colour (`#RRGGBB`, or Slack's `good`, `warning`,
    /// `danger`) and description.
    ///
    /// ```
    /// let t = fluxgate_slack::Template::new("Tripped", "danger", "Too many errors.");
    /// assert_eq!(t.title(), "Tripped");
    /// ```
    pub fn new(
        title: impl Into<String>,
        color: impl Into<String>,
        description: impl Into<String>,
    ) -> Template {
        Template {
            title: title.into(),
            color: color.into(),
            description: description.into(),
        }
    }

    /// The built-in template for a transition from `old` to `new` (SL-2).
    ///
    /// ```
    /// use fluxgate_slack::Template;
    /// use fluxgate_core::State;
    /// assert_eq!(Template::for_transition(State::HalfOpen, State::Closed).color(), "#36a64f");
    /// assert_eq!(
    ///     Template::for_transition(State::Closed, State::Disabled).title(),
    ///     "ℹ️ Circuit Breaker State Changed"
    /// );
    /// ```
    pub fn for_transition(old: State, new: State) -> Template {
        let (title, color, description) = match (old, new) {
            (State::Closed, State::Open) => (
                "🚨 Circuit Breaker Triggered",
                "#FF4C4C",
                "The request failure rate exceeded the threshold.",
            ),
            (State::Open, State::HalfOpen) => (
                "🔄 Attempting Circuit Breaker Recovery",
                "#FFA500",
                "Testing service status with partial requests.",
            ),
            (State::HalfOpen, State::Open) => (
                "⚠️ Circuit Breaker Re-triggered",
                "#FF4C4C",
                "Test request failed, reverting to open state.",
            ),
            (State::HalfOpen, State::Closed) => (
                "✅ Circuit Breaker Recovered",
                "#36a64f",
                "Test request succeeded, service is now healthy.",
            ),
            _ => return Template::fallback(),
        };
        Template::new(title, color, description)
    }

    /// The built-in template for every pair without one of its own.
    fn fallback() -> Template {
        Template::new(
            "ℹ️ Circuit Breaker State Changed",
            "#808080",
            "Circuit breaker state has been changed.",
        )
    }

    /// The title, shown in bold on the message's first line.
    ///
    /// ```
    /// # use fluxgate_slack::Template;
    /// assert_eq!(Template::new("T", "#000000", "D").title(), "T");
    /// ```
    pub fn title(&self) -> &str {
        &self.title
    }

    /// The colour of the attachment's side bar.
    ///
    /// ```
    /// # use fluxgate_slack::Template;
    /// assert_eq!(Template::new("T", "#000000", "D").color(), "#000000");
    /// ```
    pub fn color(&self) -> &str {
        &self.color
    }

    /// The text of the *Description* field.
    ///
    /// ```
    /// # use fluxgate_slack::Template;
    /// assert_eq!(Template::new("T", "#000000", "D").description(), "D");
    /// ```
    pub fn description(&self) -> &str {
        &self.description
    }
}

/// The templates of one listener: per-pair overrides, then the built-ins, then the fallback.
#[derive(Debug, Clone)]
pub(super) struct Templates {
    pairs: HashMap<(State, State), Template>,
    fallback: Template,
}

impl Default for Templates {
    fn default() -> Templates {
        let mut pairs = HashMap::new();
        for (old, new) in [
            (State::Closed, State::Open),
            (State::Open, State::HalfOpen),
            (State::HalfOpen, State::Open),
            (State::HalfOpen, State::Closed),
        ] {
            pairs.insert((old, new), Template::for_transition(old, new));
        }
        Templates {
            pairs,
            fallback: Template::fallback(),
        }
    }
}

impl Templates {
    pub(super) fn set(&mut self, old: State, new: State, template: Template) {
        self.pairs.insert((old, new), template);
    }

    pub(super) fn set_fallback(&mut self, template: Template) {
        self.fallback = template;
    }

    pub(super) fn get(&self, old: State, new: State) -> &Template {
        self.pairs.get(&(old, new)).unwrap_or(&self.fallback)
    }
}
