//! A local SMTP server that keeps what it is given (RFC 5321: greeting, EHLO, AUTH PLAIN,
//! MAIL FROM, RCPT TO, DATA ended by a lone dot, RSET, NOOP, QUIT). It can answer the next
//! DATA with a temporary failure (451), as a busy server does. The real lettre client is
//! pointed at it.

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

pub const USER: &str = "mailer";
pub const PASSWORD: &str = "sink-secret";

#[derive(Clone, Debug)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent (headers and body), dots unstuffed.
    pub data: String,
    pub authenticated_as: Option<String>,
}

impl Received {
    pub fn subject(&self) -> &str {
        self.data.lines().find_map(|line| line.strip_prefix("Subject: ")).unwrap_or_default()
    }

    /// The body after the headers, with soft line breaks of quoted-printable joined.
    pub fn body(&self) -> String {
        let body = self.data.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        body.replace("=\r\n", "").replace("=3D", "=")
    }
}

#[derive(Default)]
pub struct Sink {
    pub received: Vec<Received>,
    /// DATA commands still to answer with 451.
    pub busy: usize,
}

pub type Shared = Arc<Mutex<Sink>>;

/// Starts the sink; its `smtp://user:password@host:port` URL (no TLS: a local relay).
pub async fn smtp_sink() -> (String, Shared) {
    let sink: Shared = Arc::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let shared = sink.clone();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else { return };
            tokio::spawn(session(socket, shared.clone()));
        }
    });
    (format!("smtp://{USER}:{PASSWORD}@{address}"), sink)
}

fn address_in(argument: &str) -> String {
    argument.split_once('<').and_then(|(_, rest)| rest.split_once('>')).map_or("", |(inside, _)| inside).to_owned()
}

async fn reply(write: &mut tokio::net::tcp::OwnedWriteHalf, text: &str) -> bool {
    write.write_all(format!("{text}\r\n").as_bytes()).await.is_ok()
}

async fn session(socket: tokio::net::TcpStream, sink: Shared) {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read);
    if !reply(&mut write, "220 sink.test ESMTP ready").await {
        return;
    }
    let (mut from, mut to, mut user) = (String::new(), Vec::new(), None);
    loop {
        let mut line = String::new();
        if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        let (verb, argument) = line.split_once(' ').unwrap_or((line, ""));
        let answer = match verb.to_uppercase().as_str() {
            "EHLO" => "250-sink.test\r\n250-AUTH PLAIN\r\n250 8BITMIME".to_owned(),
            "HELO" => "250 sink.test".to_owned(),
            "AUTH" => {
                let encoded = argument.strip_prefix("PLAIN ").unwrap_or_default();
                let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap_or_default();
                let parts: Vec<&[u8]> = decoded.split(|b| *b == 0).collect();
                if parts.len() == 3 && parts[1] == USER.as_bytes() && parts[2] == PASSWORD.as_bytes() {
                    user = Some(USER.to_owned());
                    "235 2.7.0 Authentication successful".to_owned()
                } else {
                    "535 5.7.8 Authentication credentials invalid".to_owned()
                }
            }
            "MAIL" => {
                from = address_in(argument);
                "250 2.1.0 OK".to_owned()
            }
            "RCPT" => {
                to.push(address_in(argument));
                "250 2.1.5 OK".to_owned()
            }
            "DATA" => {
                if !reply(&mut write, "354 End data with <CR><LF>.<CR><LF>").await {
                    return;
                }
                let mut data = String::new();
                loop {
                    let mut line = String::new();
                    if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                let mut sink = sink.lock().unwrap();
                if sink.busy > 0 {
                    sink.busy -= 1;
                    "451 4.3.0 Try again later".to_owned()
                } else {
                    let received =
                        Received { from: from.clone(), to: to.clone(), data, authenticated_as: user.clone() };
                    sink.received.push(received);
                    "250 2.0.0 Queued".to_owned()
                }
            }
            "RSET" => {
                (from, to) = (String::new(), Vec::new());
                "250 2.0.0 OK".to_owned()
            }
            "NOOP" => "250 2.0.0 OK".to_owned(),
            "QUIT" => {
                reply(&mut write, "221 2.0.0 Bye").await;
                return;
            }
            _ => "502 5.5.2 Command not recognized".to_owned(),
        };
        if !reply(&mut write, &answer).await {
            return;
        }
    }
}
