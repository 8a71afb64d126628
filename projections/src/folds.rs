use std::collections::BTreeMap;

use domain::wallet::WalletEvent;
use domain::{Currency, DomainEvent, Postings, UserId};
use rust_decimal::Decimal;

/// What every projection sees of a ledger event.
#[derive(Clone, Copy, Debug)]
pub struct LedgerEntry<'a> {
    pub position: i64,
    pub recorded_at_micros: i64,
    pub event_type: &'a str,
    pub event: &'a DomainEvent,
    pub postings: &'a Postings,
}

impl<'a> LedgerEntry<'a> {
    /// `None` for events that move no money (order lifecycle events).
    pub fn new(position: i64, recorded_at_micros: i64, event_type: &'a str, event: &'a DomainEvent) -> Option<Self> {
        let postings = event.postings()?;
        Some(LedgerEntry { position, recorded_at_micros, event_type, event, postings })
    }

    /// The business object a statement line points at.
    pub fn reference(&self) -> Option<String> {
        let DomainEvent::Wallet(event) = self.event else { return None };
        Some(match event {
            WalletEvent::Deposited { deposit_id, .. } | WalletEvent::DepositReversed { deposit_id, .. } => {
                format!("deposit:{deposit_id}")
            }
            WalletEvent::HoldPlaced { order_id, .. }
            | WalletEvent::HoldCaptured { order_id, .. }
            | WalletEvent::HoldReleased { order_id, .. } => format!("order:{order_id}"),
            WalletEvent::Adjusted { adjustment_id, .. } => format!("adjustment:{adjustment_id}"),
            WalletEvent::WithdrawalRequested { withdrawal_id, .. }
            | WalletEvent::WithdrawalPaid { withdrawal_id, .. }
            | WalletEvent::WithdrawalRejected { withdrawal_id, .. } => format!("withdrawal:{withdrawal_id}"),
        })
    }

    /// Net change per user and currency, as (available, held). A user's debt account is
    /// not part of either; it is in the account views (trial balance, point in time).
    pub fn user_changes(&self) -> BTreeMap<BalanceKey, (Decimal, Decimal)> {
        let mut changes: BTreeMap<BalanceKey, (Decimal, Decimal)> = BTreeMap::new();
        for leg in self.postings.legs() {
            let (user, is_available) = match leg.account {
                domain::Account::UserAvailable(user) => (user, true),
                domain::Account::UserHeld(user) => (user, false),
                _ => continue,
            };
            let change = changes.entry((user, leg.amount.currency)).or_default();
            if is_available {
                change.0 += leg.amount.amount;
            } else {
                change.1 += leg.amount.amount;
            }
        }
        changes
    }

    /// Net change per account and currency.
    pub fn account_changes(&self) -> BTreeMap<AccountKey, Decimal> {
        let mut changes: BTreeMap<AccountKey, Decimal> = BTreeMap::new();
        for leg in self.postings.legs() {
            *changes.entry((leg.account.to_string(), leg.amount.currency)).or_default() += leg.amount.amount;
        }
        changes
    }
}

pub type BalanceKey = (UserId, Currency);
pub type AccountKey = (String, Currency);

/// A user's balance in one currency, and the last position that changed it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Balance {
    pub available: Decimal,
    pub held: Decimal,
    pub position: i64,
}

impl Balance {
    /// Applies one entry's change to this running balance.
    fn add(&mut self, available: Decimal, held: Decimal, position: i64) {
        self.available += available;
        self.held += held;
        self.position = position;
    }
}

/// Balances per user and currency. The fold trusts nothing and asserts nothing: the wallet
/// aggregate guards the rules, and `verify` reports a log that breaks them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BalancesFold {
    pub rows: BTreeMap<BalanceKey, Balance>,
}

impl BalancesFold {
    pub fn apply(&mut self, entry: &LedgerEntry) {
        for (key, (available, held)) in entry.user_changes() {
            self.rows.entry(key).or_default().add(available, held, entry.position);
        }
    }
}

/// One line of a user's transaction history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatementLine {
    pub user_id: UserId,
    pub currency: Currency,
    pub position: i64,
    pub event_type: String,
    pub reference: Option<String>,
    pub available_change: Decimal,
    pub held_change: Decimal,
    pub available_after: Decimal,
    pub held_after: Decimal,
    pub recorded_at_micros: i64,
}

/// Statement lines, with the running balance each line leaves behind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatementFold {
    /// Balance after the newest line, per user and currency.
    pub running: BTreeMap<BalanceKey, Balance>,
    /// Lines produced since the fold started (a sink writes and clears them).
    pub lines: Vec<StatementLine>,
}

impl StatementFold {
    pub fn apply(&mut self, entry: &LedgerEntry) {
        for (key, (available_change, held_change)) in entry.user_changes() {
            let running = self.running.entry(key).or_default();
            running.add(available_change, held_change, entry.position);
            self.lines.push(StatementLine {
                user_id: key.0,
                currency: key.1,
                position: entry.position,
                event_type: entry.event_type.to_owned(),
                reference: entry.reference(),
                available_change,
                held_change,
                available_after: running.available,
                held_after: running.held,
                recorded_at_micros: entry.recorded_at_micros,
            });
        }
    }
}

/// Balance of every ledger account; the sum per currency is always zero.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrialBalanceFold {
    pub rows: BTreeMap<AccountKey, (Decimal, i64)>,
}

impl TrialBalanceFold {
    pub fn apply(&mut self, entry: &LedgerEntry) {
        for (key, change) in entry.account_changes() {
            let row = self.rows.entry(key).or_default();
            row.0 += change;
            row.1 = entry.position;
        }
    }

    /// Sum of all accounts per currency: zero in a sound ledger.
    pub fn totals(&self) -> BTreeMap<Currency, Decimal> {
        let mut totals = BTreeMap::new();
        for ((_, currency), (balance, _)) in &self.rows {
            *totals.entry(*currency).or_insert(Decimal::ZERO) += balance;
        }
        totals
    }
}

#[cfg(test)]
mod tests {
    use domain::wallet::{WalletCommand, WalletState};
    use domain::{Aggregate, Clearing, DepositId, OrderId, PositiveMoney};

    use super::*;

    #[test]
    fn folds_agree_on_a_small_history() {
        let user = UserId::new();
        let mut wallet = WalletState::new(user, Currency::USD);
        let order_id = OrderId::new();
        let commands = [
            WalletCommand::Deposit {
                deposit_id: DepositId::new(),
                amount: PositiveMoney::parse("10", "USD").unwrap(),
                source: Clearing::Stripe,
            },
            WalletCommand::PlaceHold { order_id, amount: PositiveMoney::parse("1.5", "USD").unwrap() },
            WalletCommand::CaptureHold {
                order_id,
                provider_id: "sandbox".into(),
                cost: domain::Money::parse("1", "USD").unwrap(),
            },
        ];
        let (mut balances, mut statement, mut trial) =
            (BalancesFold::default(), StatementFold::default(), TrialBalanceFold::default());
        for (i, command) in commands.into_iter().enumerate() {
            for event in wallet.decide(command).unwrap() {
                wallet = wallet.apply(&event);
                let event = DomainEvent::Wallet(event);
                let (event_type, _) = event.encode();
                let entry = LedgerEntry::new(i as i64 + 1, 0, &event_type, &event).unwrap();
                balances.apply(&entry);
                statement.apply(&entry);
                trial.apply(&entry);
            }
        }
        let row = balances.rows[&(user, Currency::USD)];
        assert_eq!((row.available, row.held, row.position), (Decimal::new(85, 1), Decimal::ZERO, 3));
        assert_eq!(statement.lines.len(), 3);
        let last = statement.lines.last().unwrap();
        assert_eq!((last.available_after, last.held_change), (Decimal::new(85, 1), Decimal::new(-15, 1)));
        assert_eq!(last.reference, Some(format!("order:{order_id}")));
        assert_eq!(trial.totals()[&Currency::USD], Decimal::ZERO);
        assert_eq!(trial.rows[&("revenue:margin".to_string(), Currency::USD)].0, Decimal::new(5, 1));
        assert_eq!(trial.rows[&("clearing:stripe".to_string(), Currency::USD)].0, Decimal::new(-10, 0));
    }
}

/// Any one projection's fold, chosen by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fold {
    Balances(BalancesFold),
    Statement(StatementFold),
    TrialBalance(TrialBalanceFold),
}

impl Fold {
    pub fn new(projection: crate::ProjectionName) -> Fold {
        match projection {
            crate::ProjectionName::Balances => Fold::Balances(BalancesFold::default()),
            crate::ProjectionName::Statement => Fold::Statement(StatementFold::default()),
            crate::ProjectionName::TrialBalance => Fold::TrialBalance(TrialBalanceFold::default()),
        }
    }

    pub fn apply(&mut self, entry: &LedgerEntry) {
        match self {
            Fold::Balances(fold) => fold.apply(entry),
            Fold::Statement(fold) => fold.apply(entry),
            Fold::TrialBalance(fold) => fold.apply(entry),
        }
    }
}
