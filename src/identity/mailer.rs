//! Outgoing mail. Until SMTP is configured (a later issue), mail is written to the log; tests
//! keep it in memory to read the links they carry.

use std::sync::{Arc, Mutex};

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
}

impl Mailer {
    pub fn memory() -> Mailer {
        Mailer::Memory(Arc::default())
    }

    pub fn send(&self, mail: Mail) {
        match self {
            Mailer::Log => tracing::info!(to = %mail.to, subject = %mail.subject, body = %mail.body, "mail.outgoing"),
            Mailer::Memory(outbox) => outbox.lock().expect("outbox lock").push(mail),
        }
    }

    /// Mail sent so far to `to` (memory outbox only).
    pub fn sent_to(&self, to: &str) -> Vec<Mail> {
        match self {
            Mailer::Log => vec![],
            Mailer::Memory(outbox) => {
                outbox.lock().expect("outbox lock").iter().filter(|m| m.to == to).cloned().collect()
            }
        }
    }
}
