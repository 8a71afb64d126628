//! Outgoing mail from identity (verification and password reset links). With SMTP configured
//! it goes into the outbox and the sender delivers it, retrying until the server takes it;
//! without, it is written to the log (the embedded default); tests keep it in memory to read
//! the links it carries.

use std::sync::{Arc, Mutex};

use crate::projection::notifications::{self as rows, Queued};
use crate::store::Engine;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

#[derive(Clone, Default)]
pub enum Mailer {
    /// Logged at info level (`mail.outgoing`), body included: the embedded default's outbox.
    #[default]
    Log,
    Memory(Arc<Mutex<Vec<Mail>>>),
    /// Queued in the outbox, sent over SMTP.
    Outbox(Engine),
}

impl Mailer {
    pub fn memory() -> Mailer {
        Mailer::Memory(Arc::default())
    }

    /// The mailer `serve` uses: the outbox when SMTP is configured, the log otherwise.
    pub fn for_settings(settings: &crate::notifications::NotificationSettings, engine: &Engine) -> Mailer {
        if settings.smtp.is_some() { Mailer::Outbox(engine.clone()) } else { Mailer::Log }
    }

    /// Hands the mail on; once this returns, it is logged, kept or durably queued.
    pub async fn send(&self, mail: Mail) -> Result<(), sqlx::Error> {
        match self {
            Mailer::Log => tracing::info!(to = %mail.to, subject = %mail.subject, body = %mail.body, "mail.outgoing"),
            Mailer::Memory(outbox) => outbox.lock().expect("outbox lock").push(mail),
            Mailer::Outbox(engine) => {
                let queued = Queued {
                    channel: "email",
                    recipient: mail.to,
                    subject: mail.subject,
                    body: mail.body,
                    dedupe: None,
                };
                rows::enqueue(engine, &queued).await?;
            }
        }
        Ok(())
    }

    /// Mail sent so far to `to` (memory outbox only).
    pub fn sent_to(&self, to: &str) -> Vec<Mail> {
        match self {
            Mailer::Log | Mailer::Outbox(_) => vec![],
            Mailer::Memory(outbox) => {
                outbox.lock().expect("outbox lock").iter().filter(|m| m.to == to).cloned().collect()
            }
        }
    }
}
