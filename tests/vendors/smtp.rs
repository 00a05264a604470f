//! The SMTP adapter against a stand-in that speaks just enough SMTP and records the session.

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::helpers::{adapter, connection, email, UNSUBSCRIBE_URL};

/// What the stand-in saw on its one connection.
#[derive(Debug, Default)]
struct Session {
    commands: Vec<String>,
    data: String,
}

/// Accepts one connection and answers every command with 250, except `RCPT TO` with
/// `rcpt_reply`; returns the port and the session once the client hangs up.
async fn smtp_stand_in(rcpt_reply: &'static str) -> (u16, JoinHandle<Session>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let session = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (reader, mut writer) = stream.into_split();
        let mut lines = BufReader::new(reader).lines();
        let mut session = Session::default();
        writer.write_all(b"220 stand-in ESMTP\r\n").await.unwrap();
        while let Ok(Some(line)) = lines.next_line().await {
            let verb = line
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            session.commands.push(line.clone());
            let reply = match verb.as_str() {
                "EHLO" => "250-stand-in\r\n250 8BITMIME\r\n",
                "RCPT" => rcpt_reply,
                "DATA" => {
                    writer.write_all(b"354 go ahead\r\n").await.unwrap();
                    while let Ok(Some(line)) = lines.next_line().await {
                        if line == "." {
                            break;
                        }
                        session.data.push_str(&line);
                        session.data.push('\n');
                    }
                    "250 2.0.0 queued as Q1\r\n"
                }
                "QUIT" => {
                    let _ = writer.write_all(b"221 bye\r\n").await;
                    break;
                }
                _ => "250 ok\r\n",
            };
            writer.write_all(reply.as_bytes()).await.unwrap();
        }
        session
    });
    (port, session)
}

fn smtp_connection(port: u16) -> herald::vendors::ConnectionConfig {
    connection(
        "smtp",
        json!({
            "host": "127.0.0.1", "port": port, "tls": "none",
            "fromEmail": "news@acme.test", "fromName": "Acme",
        }),
        json!({}),
    )
}

#[tokio::test]
async fn an_email_is_submitted_with_both_parts_and_the_unsubscribe_headers() {
    let (port, session) = smtp_stand_in("250 ok\r\n").await;

    let receipt = adapter(&smtp_connection(port))
        .send(&email("ada@example.test"))
        .await
        .unwrap();

    let session = session.await.unwrap();
    assert!(session
        .commands
        .contains(&"MAIL FROM:<news@acme.test>".to_owned()));
    assert!(session
        .commands
        .contains(&"RCPT TO:<ada@example.test>".to_owned()));
    let data = &session.data;
    for expected in [
        "Subject: Spring sale",
        "To: ada@example.test",
        &format!("List-Unsubscribe: {UNSUBSCRIBE_URL}"),
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        "Content-Type: multipart/alternative",
        "Content-Type: text/plain",
        "Hello Ada, the sale starts today.",
        "Content-Type: text/html",
        "<p>Hello Ada, the sale starts today.</p>",
    ] {
        assert!(data.contains(expected), "missing {expected:?} in:\n{data}");
    }
    let message_id = receipt.provider_message_id.expect("a Message-ID");
    assert!(message_id.ends_with("@acme.test>"), "{message_id}");
    assert!(
        data.contains(&format!("Message-ID: {message_id}")),
        "{data}"
    );
}

#[tokio::test]
async fn a_recipient_the_server_rejects_for_good_is_permanent() {
    let (port, _session) = smtp_stand_in("550 5.1.1 no such user\r\n").await;

    let error = adapter(&smtp_connection(port))
        .send(&email("nobody@example.test"))
        .await
        .unwrap_err();

    assert!(!error.is_retryable(), "{error}");
}

#[tokio::test]
async fn a_recipient_the_server_defers_is_retryable() {
    let (port, _session) = smtp_stand_in("451 4.7.1 greylisted, try later\r\n").await;

    let error = adapter(&smtp_connection(port))
        .send(&email("ada@example.test"))
        .await
        .unwrap_err();

    assert!(error.is_retryable(), "{error}");
}
