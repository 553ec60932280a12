//! A stand-in for the 一网通办 好差评 system: a plain HTTP receiver on 127.0.0.1:0 that
//! records every evaluation the relay forwards (its `Idempotency-Key` and JSON body) and
//! answers 200, or 503 while told to fail.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Requests larger than this are refused (the relay sends a few hundred bytes).
const MAX_REQUEST: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct Received {
    pub idempotency_key: String,
    pub body: Value,
}

pub struct HcpReceiver {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
    failing: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl HcpReceiver {
    pub async fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hcp/evaluations", listener.local_addr()?);
        let received = Arc::new(Mutex::new(Vec::new()));
        let failing = Arc::new(AtomicBool::new(false));
        let (r, f) = (received.clone(), failing.clone());
        let task = tokio::spawn(async move {
            // Bounded: a test never sends more than a handful.
            for _ in 0..1000 {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (r, f) = (r.clone(), f.clone());
                tokio::spawn(async move {
                    let _ =
                        tokio::time::timeout(Duration::from_secs(10), serve(stream, r, f)).await;
                });
            }
        });
        Ok(Self {
            url,
            received,
            failing,
            task,
        })
    }

    /// While true, every request is answered 503 (and not recorded).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Waits until at least `n` evaluations arrived.
    pub async fn wait_for(&self, n: usize, limit: Duration) -> Result<Vec<Received>> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let got = self.received();
            if got.len() >= n {
                return Ok(got);
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "the 好差评 receiver got {} evaluations within {limit:?}, expected {n}",
                    got.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for HcpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut stream: TcpStream,
    received: Arc<Mutex<Vec<Received>>>,
    failing: Arc<AtomicBool>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head_end, length) = loop {
        let Ok(n) = stream.read(&mut chunk).await else {
            return;
        };
        if n == 0 || buf.len() > MAX_REQUEST {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (end + 4, length);
        }
    };
    while buf.len() < head_end + length {
        let Ok(n) = stream.read(&mut chunk).await else {
            return;
        };
        if n == 0 || buf.len() > MAX_REQUEST {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let key = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("idempotency-key")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    let status = if failing.load(Ordering::SeqCst) {
        "503 Service Unavailable"
    } else {
        match serde_json::from_slice::<Value>(&buf[head_end..head_end + length]) {
            Ok(body) => {
                if let Ok(mut r) = received.lock() {
                    r.push(Received {
                        idempotency_key: key,
                        body,
                    });
                }
                "200 OK"
            }
            Err(_) => "400 Bad Request",
        }
    };
    let answer = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
}
