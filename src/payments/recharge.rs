//! Manual recharges: UPI (credited when an admin confirms the transfer reached us) and TRON
//! USDT (credited when the chain shows a confirmed transfer of that amount to our address).
//! The user names the transfer (UPI reference, TRON transaction hash); it is claimed once,
//! ever, so one transfer can never be credited twice.

use domain::deposit::{DepositCommand, DepositMethod, DepositStatus, Reference};
use domain::{DepositId, DomainEvent, PositiveMoney, UserId};
use projections::DepositView;

use super::{PaymentError, Payments};
use crate::identity::now;
use crate::service::ServiceError;
use crate::store::Metadata;

/// What checking a TRON recharge against the chain found.
#[derive(Debug, PartialEq, Eq)]
pub enum ChainCheck {
    /// Confirmed with the declared amount: credited (now or before).
    Credited,
    /// Not (yet) among the confirmed transfers to our address.
    NotFound,
    /// Found, but not what was declared: the deposit failed with the reason.
    Mismatch(String),
}

impl Payments {
    /// Records a recharge the user says they sent; TRON is checked against the chain at once.
    pub async fn start_recharge(
        &self,
        user_id: UserId,
        method: DepositMethod,
        amount: PositiveMoney,
        reference: Reference,
        metadata: Metadata,
    ) -> Result<DepositId, PaymentError> {
        let enabled = match method {
            DepositMethod::Upi => self.settings.upi_vpa.is_some(),
            DepositMethod::Tron => self.tron.is_some(),
            DepositMethod::Stripe | DepositMethod::Sandbox => false,
        };
        if !enabled {
            return Err(PaymentError::MethodDisabled(method.as_str()));
        }
        self.check_amount(amount)?;
        let deposit_id = DepositId::new();
        let at = now();
        let initiate = DepositCommand::Initiate { deposit_id, user_id, method, amount, reference: Some(reference), at };
        self.ledger.deposit_command(deposit_id, initiate, None, metadata.clone()).await?;
        if method == DepositMethod::Tron {
            // Best effort: a chain that does not answer now is asked again at verify.
            if let Err(error) = self.check_chain(deposit_id, metadata).await {
                tracing::warn!(%deposit_id, %error, "payments.tron_check_failed");
            }
        }
        Ok(deposit_id)
    }

    /// Asks the chain about a pending TRON recharge and records what it says.
    pub async fn check_chain(&self, deposit_id: DepositId, metadata: Metadata) -> Result<ChainCheck, PaymentError> {
        let tron = self.tron.as_ref().ok_or(PaymentError::MethodDisabled("tron"))?;
        let deposit = self.ledger.deposit(deposit_id).await?.state;
        let Some(initiated) = deposit.initiated.as_ref().filter(|i| i.method == DepositMethod::Tron) else {
            return Err(ServiceError::Deposit(domain::deposit::DepositError::Unknown).into());
        };
        if deposit.status != Some(DepositStatus::Pending) {
            return Ok(match deposit.status {
                Some(DepositStatus::Succeeded) => ChainCheck::Credited,
                _ => ChainCheck::Mismatch(deposit.reason.clone().unwrap_or_default()),
            });
        }
        let hash = initiated.reference.as_ref().map(Reference::as_str).unwrap_or_default();
        let Some(transfer) = tron.find_transfer(hash).await? else { return Ok(ChainCheck::NotFound) };
        let declared = initiated.amount;
        let key = Some(format!("tron:{hash}"));
        if transfer.amount != declared.amount() {
            let reason = format!("the transaction sent {}, not the {} declared", transfer.amount, declared.amount());
            let command = DepositCommand::Fail { reason: reason.clone(), at: now() };
            self.ledger.deposit_command(deposit_id, command, key, metadata).await?;
            return Ok(ChainCheck::Mismatch(reason));
        }
        let command = DepositCommand::Succeed { amount: declared, at: now() };
        self.ledger.deposit_command(deposit_id, command, key, metadata).await?;
        Ok(ChainCheck::Credited)
    }

    /// An admin confirms that a UPI transfer arrived: the declared amount is credited.
    pub async fn approve_deposit(&self, deposit_id: DepositId, metadata: Metadata) -> Result<(), PaymentError> {
        let deposit = self.ledger.deposit(deposit_id).await?.state;
        let Some(initiated) = deposit.initiated.as_ref().filter(|i| i.method == DepositMethod::Upi) else {
            return Err(ServiceError::Deposit(domain::deposit::DepositError::Unknown).into());
        };
        let command = DepositCommand::Succeed { amount: initiated.amount, at: now() };
        let key = Some(format!("deposit-approved:{deposit_id}"));
        self.ledger.deposit_command(deposit_id, command, key, metadata).await?;
        Ok(())
    }

    /// An admin rejects a pending recharge with a reason; nothing is credited.
    pub async fn reject_deposit(
        &self,
        deposit_id: DepositId,
        admin_id: UserId,
        reason: String,
        metadata: Metadata,
    ) -> Result<(), PaymentError> {
        let deposit = self.ledger.deposit(deposit_id).await?.state;
        let manual =
            deposit.initiated.as_ref().is_some_and(|i| matches!(i.method, DepositMethod::Upi | DepositMethod::Tron));
        if !manual {
            return Err(ServiceError::Deposit(domain::deposit::DepositError::Unknown).into());
        }
        let command = DepositCommand::Reject { reason, by: admin_id, at: now() };
        let key = Some(format!("deposit-rejected:{deposit_id}"));
        self.ledger.deposit_command(deposit_id, command, key, metadata).await?;
        Ok(())
    }

    /// A deposit as its owner sees it (`None` if it is not theirs), folded from its stream.
    pub async fn deposit_view(
        &self,
        user_id: Option<UserId>,
        deposit_id: DepositId,
    ) -> Result<Option<DepositView>, PaymentError> {
        let stream = domain::events::deposit_stream(deposit_id);
        let apply = |view: Option<DepositView>, event| match (view, event) {
            (None, DomainEvent::Deposit(event)) => DepositView::initiated(&event).map(Some),
            (Some(mut view), DomainEvent::Deposit(event)) => {
                view.apply(&event);
                Some(Some(view))
            }
            _ => None,
        };
        let loaded = self.ledger.store().fold_stream(&stream, None, apply).await.map_err(ServiceError::from)?;
        Ok(loaded.state.filter(|view| user_id.is_none_or(|user| view.user_id == user)))
    }
}
