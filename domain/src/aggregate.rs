//! The shape every aggregate has: decide commands on state, fold events into state.

/// `decide` turns a command into events (or a typed rejection) without side effects;
/// `apply` folds one event into state. The same events always give the same state.
pub trait Aggregate: Sized + Clone {
    type Command;
    type Event: Clone;
    type Error;

    fn decide(&self, command: Self::Command) -> Result<Vec<Self::Event>, Self::Error>;
    fn apply(self, event: &Self::Event) -> Self;

    fn apply_all<'a>(self, events: impl IntoIterator<Item = &'a Self::Event>) -> Self
    where
        Self::Event: 'a,
    {
        events.into_iter().fold(self, |state, event| state.apply(event))
    }
}

/// Given/when/then for aggregates: `Scenario::given(state, events).when(cmd).then(events)`.
#[cfg(test)]
pub mod scenario {
    use std::fmt::Debug;

    use super::Aggregate;

    pub struct Scenario<A: Aggregate> {
        state: A,
    }

    pub struct When<A: Aggregate> {
        result: Result<Vec<A::Event>, A::Error>,
    }

    impl<A: Aggregate> Scenario<A> {
        pub fn given(initial: A, events: &[A::Event]) -> Self {
            Scenario { state: initial.apply_all(events) }
        }

        pub fn when(self, command: A::Command) -> When<A> {
            When { result: self.state.decide(command) }
        }
    }

    impl<A: Aggregate> When<A>
    where
        A::Event: PartialEq + Debug,
        A::Error: PartialEq + Debug,
    {
        #[track_caller]
        pub fn then(self, expected: Vec<A::Event>) {
            assert_eq!(self.result, Ok(expected));
        }

        #[track_caller]
        pub fn then_fails(self, expected: A::Error) {
            assert_eq!(self.result, Err(expected));
        }
    }
}
