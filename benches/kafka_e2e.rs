//! End-to-end lines/s of `iocmatch run` (consume, score, produce hits, commit) beside the raw consume rate of a
//! bare rdkafka consumer on the same broker and topic, as a ratio. Needs `tansu` (scripts/test.sh installs it).
//! Run: `cargo bench --bench kafka_e2e` (IOCMATCH_E2E_LINES sets the line count, default 100000).

#[path = "../tests/common/kafka.rs"]
mod kafka;

use iocmatch::workload::{generate, WorkloadSpec};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureRecord;
use std::time::{Duration, Instant};

fn metric(port: u16, name: &str) -> Option<f64> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
}

/// User plus system CPU seconds of a process, from /proc.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let Some(broker) = kafka::Broker::start() else { return };
    let n: usize = std::env::var("IOCMATCH_E2E_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    broker.create_topic("logs", 2);
    broker.create_topic("hits", 1);
    let w = generate(&WorkloadSpec {
        seed: 11,
        indicators: 100_000,
        lines: n,
        hit_rate: 0.01,
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let producer = broker.producer();
    rt.block_on(async {
        let lines: Vec<&[u8]> = w.lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
        for chunk in lines.chunks(5000) {
            let futs = chunk
                .iter()
                .map(|l| producer.send(FutureRecord::<(), [u8]>::to("logs").payload(l), Duration::from_secs(30)));
            for r in futures_util::future::join_all(futs).await {
                r.map_err(|(e, _)| e).unwrap();
            }
        }
    });
    eprintln!("produced {n} lines ({:.1} MB)", w.lines.len() as f64 / 1e6);

    // Bare consumer: time from the first message to the last.
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.brokers())
        .set("group.id", "bare")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    c.subscribe(&["logs"]).unwrap();
    let broker_pid = broker.child.id();
    let (b0, s0) = (cpu_secs(broker_pid), cpu_secs(std::process::id()));
    let (mut got, mut first) = (0usize, None);
    while got < n {
        if let Some(Ok(_)) = c.poll(Duration::from_millis(500)) {
            first.get_or_insert_with(Instant::now);
            got += 1;
        }
    }
    let bare = n as f64 / first.unwrap().elapsed().as_secs_f64();
    eprintln!(
        "bare phase CPU: broker {:.2} s, client {:.2} s",
        cpu_secs(broker_pid) - b0,
        cpu_secs(std::process::id()) - s0
    );
    let (b1, s1) = (cpu_secs(broker_pid), cpu_secs(std::process::id()));

    // iocmatch run, in-process: time from the first scored line until every line is scored and committed.
    let dir = tempfile::tempdir().unwrap();
    let iocs = dir.path().join("iocs.txt");
    std::fs::write(
        &iocs,
        w.indicators
            .iter()
            .map(|i| format!("{}\n", i.value))
            .collect::<String>(),
    )
    .unwrap();
    let port = kafka::free_port();
    let cfg = iocmatch::config::Config::parse(
        &format!(
            "state_dir = {:?}\niocs = [{:?}]\n[kafka]\nbrokers = \"{}\"\ngroup_id = \"e2e\"\ninput_topics = [\"logs\"]\nhits_topic = \"hits\"\ncommit_interval_ms = 1000\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n",
            dir.path().join("state").display().to_string(),
            iocs.display().to_string(),
            broker.brokers()
        ),
        "e2e.toml",
        &std::env::vars().collect::<Vec<_>>(),
    )
    .unwrap();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let watcher = std::thread::spawn(move || {
        let mut first = None;
        let mut all_scored = None;
        loop {
            std::thread::sleep(Duration::from_millis(20));
            let lines = metric(port, "iocmatch_lines_total").unwrap_or(0.0) as usize;
            if lines > 0 {
                first.get_or_insert_with(Instant::now);
            }
            let in_flight = metric(port, "iocmatch_in_flight_messages").unwrap_or(1.0);
            if lines >= n && all_scored.is_none() {
                all_scored = Some(first.unwrap().elapsed().as_secs_f64());
            }
            if lines >= n && in_flight == 0.0 {
                let secs = first.unwrap().elapsed().as_secs_f64();
                eprintln!(
                    "all lines scored after {:.2} s; every hit acknowledged after {secs:.2} s",
                    all_scored.unwrap()
                );
                let _ = done_tx.send(());
                return secs;
            }
        }
    });
    rt.block_on(iocmatch::stream::run(cfg, async {
        let _ = done_rx.await;
    }))
    .unwrap();
    let e2e = n as f64 / watcher.join().unwrap();
    eprintln!(
        "e2e phase CPU: broker {:.2} s, iocmatch {:.2} s",
        cpu_secs(broker_pid) - b1,
        cpu_secs(std::process::id()) - s1
    );
    println!("kafka_e2e: {n} lines, 100k indicators, 2 partitions, 2 cores");
    println!("  bare rdkafka consumer:       {bare:>10.0} lines/s");
    println!("  iocmatch run (end to end):   {e2e:>10.0} lines/s");
    println!("  ratio:                       {:>10.2}", e2e / bare);
}
