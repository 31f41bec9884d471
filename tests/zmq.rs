//! MISP's ZeroMQ feed against a real libzmq publisher (pyzmq, `tests/support/misp_zmq_pub.py`) on loopback: add,
//! edit, soft delete, delete, an event delete, a frame that cannot be read, and a publisher restart.
//! `scripts/test.sh` installs pyzmq and sets `IOCMATCH_REQUIRE_ZMQ=1`, so there the test cannot skip.

use iocmatch::refresh::push::Notice;
use iocmatch::refresh::{zmq, RefreshMetrics};
use iocmatch::shutdown::Shutdown;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

struct Publisher {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Publisher {
    fn start(port: u16) -> Option<Publisher> {
        let have = Command::new("python3").args(["-c", "import zmq"]).status();
        if !have.is_ok_and(|s| s.success()) {
            assert!(
                std::env::var_os("IOCMATCH_REQUIRE_ZMQ").is_none(),
                "pyzmq is required (pip install pyzmq)"
            );
            eprintln!("SKIP: pyzmq is not installed (pip install pyzmq)");
            return None;
        }
        let mut child = Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/misp_zmq_pub.py"))
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut p = Publisher { child, stdin, stdout };
        p.ready();
        Some(p)
    }

    fn ready(&mut self) {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "READY");
    }

    fn command(&mut self, c: &str) {
        writeln!(self.stdin, "{c}").unwrap();
        self.stdin.flush().unwrap();
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// PUB/SUB drops what is published before a subscription arrives, so a frame is sent again until it is seen.
async fn send_until(
    p: &mut Publisher,
    rx: &mut mpsc::Receiver<Notice>,
    frame: &str,
    want: impl Fn(&Notice) -> bool,
) -> Notice {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        p.command(&format!("SEND {frame}"));
        if let Ok(Some(n)) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
            if want(&n) {
                return n;
            }
        }
    }
    panic!("never received: {frame}");
}

fn attribute(n: &Notice) -> Option<(&str, &str, bool)> {
    match n {
        Notice::Attribute { attr, .. } => Some((attr.uuid.as_deref().unwrap_or(""), attr.value.as_str(), attr.deleted)),
        Notice::Event { .. } => None,
    }
}

fn frame(action: &str, value: &str, ts: u32, deleted: bool) -> String {
    let event = if action == "delete" {
        String::new()
    } else {
        r#","Event":{"id":"77","uuid":"e0000000-0000-4000-8000-000000000077","info":"x","published":true}"#.into()
    };
    format!(
        r#"misp_json_attribute {{"Attribute":{{"id":"9","event_id":"77","type":"domain","category":"Network activity","value":"{value}","to_ids":true,"uuid":"a0000000-0000-4000-8000-000000000009","timestamp":"{ts}","deleted":{deleted}}}{event},"action":"{action}"}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misp_zeromq_notifications_arrive_and_survive_a_publisher_restart() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let Some(mut publisher) = Publisher::start(port) else {
        return;
    };
    let (tx, mut rx) = mpsc::channel(100);
    let metrics = Arc::new(RefreshMetrics::default());
    let shutdown = Shutdown::new();
    let task = zmq::spawn(format!("tcp://127.0.0.1:{port}"), tx, metrics.clone(), shutdown.clone());

    let add = send_until(
        &mut publisher,
        &mut rx,
        &frame("add", "zmq.example.net", 100, false),
        |n| attribute(n).is_some_and(|a| a.1 == "zmq.example.net"),
    )
    .await;
    assert!(matches!(
        add,
        Notice::Attribute {
            published: Some(true),
            ..
        }
    ));
    send_until(
        &mut publisher,
        &mut rx,
        &frame("edit", "zmq2.example.net", 101, false),
        |n| attribute(n).is_some_and(|a| a.1 == "zmq2.example.net" && !a.2),
    )
    .await;
    send_until(
        &mut publisher,
        &mut rx,
        &frame("soft-delete", "zmq2.example.net", 102, true),
        |n| attribute(n).is_some_and(|a| a.2),
    )
    .await;
    let hard = send_until(
        &mut publisher,
        &mut rx,
        &frame("delete", "zmq2.example.net", 103, false),
        |n| attribute(n).is_some_and(|a| a.2),
    )
    .await;
    assert!(
        matches!(hard, Notice::Attribute { published: None, .. }),
        "a hard delete carries no Event"
    );

    publisher.command("SEND misp_json_attribute {not json");
    let event_delete = r#"misp_json_event {"Event":{"id":"77","uuid":"e0000000-0000-4000-8000-000000000077","info":"x"},"action":"delete"}"#;
    send_until(&mut publisher, &mut rx, event_delete, |n| {
        matches!(n, Notice::Event { deleted: true, .. })
    })
    .await;
    let skipped = metrics.errors.lock().unwrap().get("misp_zmq").copied().unwrap_or(0);
    assert_eq!(skipped, 1, "the unreadable frame is counted");

    publisher.command("RESTART");
    publisher.ready();
    send_until(
        &mut publisher,
        &mut rx,
        &frame("add", "after-restart.example.net", 200, false),
        |n| attribute(n).is_some_and(|a| a.1 == "after-restart.example.net"),
    )
    .await;

    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}
