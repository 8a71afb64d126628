//! Email over SMTP (lettre), for verification and reset mail and deposit receipts. `SMTP_URL`
//! names the server the way lettre reads it: `smtps://user:pass@host` (TLS from the start),
//! `smtp://user:pass@host:587?tls=required` (STARTTLS), `smtp://host:25` (plain, local relays
//! only). `MAIL_FROM` is the sender, `Name <address>` or a bare address.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

#[derive(Clone, Debug)]
pub struct SmtpSettings {
    pub url: String,
    pub from: String,
    pub timeout: Duration,
}

pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Smtp {
    /// The client for these settings; an unusable URL or sender is named.
    pub fn new(settings: &SmtpSettings) -> Result<Smtp, String> {
        let from = settings.from.parse::<Mailbox>().map_err(|e| format!("MAIL_FROM is not a mailbox: {e}"))?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&settings.url)
            .map_err(|e| format!("SMTP_URL is not usable: {e}"))?
            .timeout(Some(settings.timeout))
            .build();
        Ok(Smtp { transport, from })
    }

    /// Sends one plain-text mail; the server's refusal or the connection's failure as text.
    pub async fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), String> {
        let to = to.parse::<Mailbox>().map_err(|e| format!("not a mailbox: {e}"))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_owned())
            .map_err(|e| format!("cannot build the mail: {e}"))?;
        self.transport.send(message).await.map(|_| ()).map_err(|e| {
            let kind = if e.is_permanent() { "refused" } else { "failed" };
            format!("SMTP {kind}: {e}")
        })
    }
}
