//! Application service for the ledger: loads aggregates from the store, decides commands
//! with the pure domain, and appends the events (an order and its wallet together in one
//! atomic append). A version conflict means another request changed the stream first: the
//! command is decided again on fresh state, a bounded number of times.

use domain::deposit::{DepositCommand, DepositEvent, DepositState};
use domain::events::{ReferenceClaim, deposit_reference_stream, deposit_stream, order_stream, wallet_stream};
use domain::order::{OrderCommand, OrderError, OrderEvent, OrderPolicy, OrderState, wallet_effect};
use domain::wallet::{WalletCommand, WalletError, WalletEvent, WalletState};
use domain::{Aggregate, Currency, DepositId, DomainEvent, OrderId, UserId};

use crate::store::{
    AppendOutcome, AppendRequest, EventStore, ExpectedVersion, Folded, Loaded, Metadata, NewEvent, OrderLog,
    StoreError, StreamAppend,
};

/// How many times a command is re-decided after losing a version race.
pub const CONFLICT_RETRIES_MAX: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Wallet(#[from] WalletError),
    #[error(transparent)]
    Order(#[from] OrderError),
    #[error(transparent)]
    Deposit(#[from] domain::deposit::DepositError),
    /// The external reference (payment intent, UPI reference, TRON hash) belongs to another
    /// deposit already.
    #[error("this reference was already used for a deposit")]
    ReferenceUsed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Clone)]
pub struct Ledger {
    store: EventStore,
    pub policy: OrderPolicy,
}

impl Ledger {
    pub fn new(store: EventStore, policy: OrderPolicy) -> Self {
        Ledger { store, policy }
    }

    pub fn store(&self) -> &EventStore {
        &self.store
    }

    /// The wallet as this process keeps it in memory (`fresh`: as the database has it now).
    pub async fn wallet_as(
        &self,
        user: UserId,
        currency: Currency,
        fresh: bool,
    ) -> Result<Loaded<WalletState>, ServiceError> {
        self.read_wallet(user, currency, fresh, Clone::clone).await
    }

    /// The wallet's available balance as this process keeps it (`fresh`: as the database
    /// has it now), read without copying the wallet.
    pub async fn available_as(
        &self,
        user: UserId,
        currency: Currency,
        fresh: bool,
    ) -> Result<rust_decimal::Decimal, ServiceError> {
        self.read_wallet(user, currency, fresh, |wallet| wallet.state.available).await
    }

    async fn read_wallet<T>(
        &self,
        user: UserId,
        currency: Currency,
        fresh: bool,
        read: impl FnOnce(&Loaded<WalletState>) -> T,
    ) -> Result<T, ServiceError> {
        let stream = wallet_stream(user, currency);
        match &*self.store.folded(&stream, fresh).await? {
            Folded::Wallet(wallet) => Ok(read(wallet)),
            _ => Err(StoreError::Invalid(format!("{stream} is not a wallet")).into()),
        }
    }

    /// The wallet as the database has it now.
    pub async fn wallet(&self, user: UserId, currency: Currency) -> Result<Loaded<WalletState>, ServiceError> {
        self.wallet_as(user, currency, true).await
    }

    /// The order's events as this process keeps them (`fresh`: as the database has them now).
    pub async fn order_log(&self, order_id: OrderId, fresh: bool) -> Result<Loaded<OrderLog>, ServiceError> {
        let stream = order_stream(order_id);
        match &*self.store.folded(&stream, fresh).await? {
            Folded::Order(order) => Ok(order.clone()),
            _ => Err(StoreError::Invalid(format!("{stream} is not an order")).into()),
        }
    }

    pub async fn order(&self, order_id: OrderId) -> Result<Loaded<OrderState>, ServiceError> {
        let log = self.order_log(order_id, true).await?;
        Ok(Loaded { state: log.state.state(), version: log.version })
    }

    /// Decides a wallet command and appends its events. `key` makes a retry harmless.
    pub async fn wallet_command(
        &self,
        user: UserId,
        currency: Currency,
        command: WalletCommand,
        key: Option<String>,
        metadata: Metadata,
    ) -> Result<AppendOutcome, ServiceError> {
        let command = &command;
        let outcome = self
            .decide_and_append(key, metadata, move |fresh| async move {
                let wallet = self.wallet_as(user, currency, fresh).await?;
                Ok(match wallet.state.decide(command.clone()) {
                    Ok(events) => Decided::append(vec![wallet_append(user, currency, wallet.version, &events)]),
                    Err(refused) => Decided::Refused(refused.into()),
                })
            })
            .await?;
        outcome.ok_or_else(|| StoreError::Invalid("a wallet command decided nothing".into()).into())
    }

    /// Decides an order command; the wallet effect it implies (hold, capture, release) is
    /// decided too and both are appended atomically. `None`: nothing to do (a repeated SMS).
    pub async fn order_command(
        &self,
        order_id: OrderId,
        command: OrderCommand,
        key: Option<String>,
        metadata: Metadata,
    ) -> Result<Option<AppendOutcome>, ServiceError> {
        self.order_commands(order_id, vec![command], key, metadata).await
    }

    /// Decides several order commands in turn, each on the state the ones before leave, and
    /// appends all their events with their wallet effects in one atomic append (placing an
    /// order and assigning its number: the hold and the number are recorded together).
    pub async fn order_commands(
        &self,
        order_id: OrderId,
        commands: Vec<OrderCommand>,
        key: Option<String>,
        metadata: Metadata,
    ) -> Result<Option<AppendOutcome>, ServiceError> {
        let commands = &commands;
        // An order being placed has a new id: its stream is empty, nothing to read (were the
        // id taken, the append would conflict and the next decision read the database).
        let placing = matches!(commands.first(), Some(OrderCommand::Place { .. }));
        self.decide_and_append(key, metadata, move |fresh| async move {
            let log = match placing && !fresh {
                true => Loaded { state: OrderLog::default(), version: 0 },
                false => self.order_log(order_id, fresh).await?,
            };
            let order = Loaded { state: log.state.state(), version: log.version };
            let mut state = order.state.clone();
            let mut events = Vec::new();
            for command in commands.iter().cloned() {
                match state.decide(command) {
                    Ok(decided) => {
                        state = state.apply_all(&decided);
                        events.extend(decided);
                    }
                    Err(refused) => return Ok(Decided::Refused(refused.into())),
                }
            }
            if events.is_empty() {
                return Ok(Decided::Nothing);
            }
            let mut streams = vec![StreamAppend {
                stream_id: order_stream(order_id),
                expected: ExpectedVersion::from_version(order.version),
                events: events.iter().map(|e| NewEvent::from_domain(&DomainEvent::Order(e.clone()))).collect(),
            }];
            if let Some(wallet) = self.wallet_effects(&order.state, &events, fresh).await? {
                streams.push(wallet);
            }
            Ok(Decided::append(streams))
        })
        .await
    }

    pub async fn deposit(&self, deposit_id: DepositId) -> Result<Loaded<DepositState>, ServiceError> {
        let apply = |state: DepositState, event| match event {
            DomainEvent::Deposit(event) => Some(state.apply(&event)),
            _ => None,
        };
        Ok(self.store.fold_stream(&deposit_stream(deposit_id), DepositState::default(), apply).await?)
    }

    /// Decides a deposit command and appends it with its wallet effect (a credit or a
    /// reversal) in one atomic append. Initiating with a reference claims it in the same
    /// append: a reference used before is [`ServiceError::ReferenceUsed`].
    pub async fn deposit_command(
        &self,
        deposit_id: DepositId,
        command: DepositCommand,
        key: Option<String>,
        metadata: Metadata,
    ) -> Result<Option<AppendOutcome>, ServiceError> {
        let command = &command;
        self.decide_and_append(key, metadata, move |fresh| async move {
            let deposit = self.deposit(deposit_id).await?;
            let events = match deposit.state.decide(command.clone()) {
                Ok(events) => events,
                Err(refused) => return Ok(Decided::Refused(refused.into())),
            };
            let mut streams = vec![StreamAppend {
                stream_id: deposit_stream(deposit_id),
                expected: ExpectedVersion::from_version(deposit.version),
                events: events.iter().map(|e| NewEvent::from_domain(&DomainEvent::Deposit(e.clone()))).collect(),
            }];
            let mut claim = None;
            for event in &events {
                if let DepositEvent::Initiated { method, reference: Some(reference), .. } = event {
                    let stream_id = deposit_reference_stream(*method, reference);
                    let claimed = ReferenceClaim::Claimed { deposit_id, method: *method, reference: reference.clone() };
                    claim = Some(stream_id.clone());
                    streams.push(StreamAppend {
                        stream_id,
                        expected: ExpectedVersion::NoStream,
                        events: vec![NewEvent::from_domain(&claimed.into())],
                    });
                }
            }
            let after = deposit.state.clone().apply_all(&events);
            let effects: Vec<_> =
                events.iter().filter_map(|event| domain::deposit::wallet_effect(&after, event)).collect();
            if let (false, Some(initiated)) = (effects.is_empty(), after.initiated.as_ref()) {
                let (user, currency) = (initiated.user_id, initiated.amount.currency());
                streams.push(self.decide_wallet(user, currency, effects, fresh).await?);
            }
            Ok(Decided::Append { streams, claim })
        })
        .await
    }

    /// The one loop every command runs: a keyed command already applied answers its first
    /// outcome; otherwise `decide` reads the state and says what to append. It reads memory
    /// first (`fresh` false); a refusal, nothing to do, or a conflict (someone appended
    /// meanwhile, or memory was behind) decides again on the database's state, a conflict a
    /// few times at most. A conflict on the stream `decide` names as its claim means the
    /// claim was taken.
    async fn decide_and_append<Decision>(
        &self,
        key: Option<String>,
        metadata: Metadata,
        mut decide: impl FnMut(bool) -> Decision,
    ) -> Result<Option<AppendOutcome>, ServiceError>
    where
        Decision: Future<Output = Result<Decided, ServiceError>>,
    {
        let mut attempt = 0;
        let mut fresh = false;
        loop {
            if let Some(first) = self.first_outcome(&key).await? {
                return Ok(Some(first));
            }
            let decided = match decide(fresh).await {
                // The order was read before a concurrent command settled its hold, the wallet
                // after: decide again on both as they are now (the order is then closed).
                Err(ServiceError::Wallet(WalletError::UnknownHold(_))) if attempt < CONFLICT_RETRIES_MAX => {
                    (attempt, fresh) = (attempt + 1, true);
                    continue;
                }
                Err(ServiceError::Wallet(_)) | Ok(Decided::Refused(_) | Decided::Nothing) if !fresh => {
                    fresh = true;
                    continue;
                }
                decided => decided?,
            };
            let (streams, claim) = match decided {
                Decided::Append { streams, claim } => (streams, claim),
                Decided::Nothing => return Ok(None),
                Decided::Refused(refused) => return self.first_outcome(&key).await?.map(Some).ok_or(refused),
            };
            let request = AppendRequest { streams, idempotency_key: key.clone(), metadata: metadata.clone() };
            match self.store.append(request).await {
                Err(StoreError::Conflict { stream_id, .. }) if Some(&stream_id) == claim.as_ref() => {
                    return Err(ServiceError::ReferenceUsed);
                }
                Err(StoreError::Conflict { .. }) if attempt < CONFLICT_RETRIES_MAX => {
                    (attempt, fresh) = (attempt + 1, true)
                }
                result => return Ok(Some(result?)),
            }
        }
    }

    /// A command that carries a key and was already applied returns its first outcome:
    /// asked before deciding (a retry must not be refused by the state it created), and again
    /// when the decision is refused (a concurrent first attempt may have committed meanwhile).
    async fn first_outcome(&self, key: &Option<String>) -> Result<Option<AppendOutcome>, ServiceError> {
        match key {
            Some(key) => Ok(self.store.idempotent_outcome(key).await?),
            None => Ok(None),
        }
    }

    async fn wallet_effects(
        &self,
        before: &OrderState,
        events: &[OrderEvent],
        fresh: bool,
    ) -> Result<Option<StreamAppend>, ServiceError> {
        let mut order = before.clone();
        let mut commands = Vec::new();
        let mut owner = order.placed.as_ref().map(|p| (p.user_id, p.price.currency()));
        for event in events {
            if let OrderEvent::Placed { user_id, price, .. } = event {
                owner = Some((*user_id, price.currency()));
            }
            commands.extend(wallet_effect(&order, event));
            order = order.apply(event);
        }
        let (Some((user, currency)), false) = (owner, commands.is_empty()) else { return Ok(None) };
        Ok(Some(self.decide_wallet(user, currency, commands, fresh).await?))
    }

    /// Decides wallet commands in turn on the wallet's current state: the append of their
    /// events, expecting the version they were decided on.
    async fn decide_wallet(
        &self,
        user: UserId,
        currency: Currency,
        commands: Vec<WalletCommand>,
        fresh: bool,
    ) -> Result<StreamAppend, ServiceError> {
        // Decided on the wallet in memory as it is; a copy is made only to decide a second
        // command after the first one's events.
        self.read_wallet(user, currency, fresh, |wallet| {
            let mut state = std::borrow::Cow::Borrowed(&wallet.state);
            let mut events = Vec::new();
            let last = commands.len().saturating_sub(1);
            for (i, command) in commands.into_iter().enumerate() {
                let decided = state.decide(command)?;
                if i < last {
                    state = std::borrow::Cow::Owned(state.into_owned().apply_all(&decided));
                }
                events.extend(decided);
            }
            Ok(wallet_append(user, currency, wallet.version, &events))
        })
        .await?
    }
}

/// What one decision of a command comes to.
enum Decided {
    /// Append these streams atomically; `claim`: a stream created to claim something once.
    Append {
        streams: Vec<StreamAppend>,
        claim: Option<String>,
    },
    /// Nothing to do (a repeated SMS, say).
    Nothing,
    Refused(ServiceError),
}

impl Decided {
    fn append(streams: Vec<StreamAppend>) -> Decided {
        Decided::Append { streams, claim: None }
    }
}

fn wallet_append(user: UserId, currency: Currency, version: u64, events: &[WalletEvent]) -> StreamAppend {
    StreamAppend {
        stream_id: wallet_stream(user, currency),
        expected: ExpectedVersion::from_version(version),
        events: events.iter().map(|e| NewEvent::from_domain(&DomainEvent::Wallet(e.clone()))).collect(),
    }
}
