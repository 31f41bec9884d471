//! End-to-end lines/s of `iocmatch run` (consume, score, produce hits, commit) beside the raw consume rate of a
//! bare rdkafka consumer on the same broker and topic, as a ratio. Needs `tansu` (scripts/test.sh installs it).
//!
//! Run: `cargo bench --bench kafka_e2e`. Environment:
//! - `IOCMATCH_E2E_LINES` (default 100000) and `IOCMATCH_E2E_HIT_RATE` (default 0.01);
//! - `IOCMATCH_E2E_STORAGE`: tansu storage engines to measure on, comma-separated (default
//!   `memory://tansu/,sqlite://tansu.db`). Each engine gets a fresh broker.
//!
//! Why two engines: tansu's memory engine keeps record batches whole, headers inside, as a Kafka log does. Its SQLite
//! engine stores headers in a table without an index and looks them up with a scan for every record it serves, so
//! each hit produced (two headers) slows every later fetch of the input topic: there the ratio measures the test
//! broker rather than iocmatch.

#[path = "../tests/common/kafka.rs"]
mod kafka;

use iocmatch::bench::{generate, Workload, WorkloadSpec};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::time::{Duration, Instant};

fn metric(port: u16, name: &str) -> Option<f64> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let mut found = None;
    for l in out.lines() {
        if let Some(v) = l
            .strip_prefix(name)
            .and_then(|rest| rest.rsplit(' ').next()?.parse::<f64>().ok())
        {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

/// User plus system CPU seconds of a process, from /proc.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Row {
    engine: String,
    bare: f64,
    e2e: f64,
    hits: f64,
    /// CPU seconds while lines flowed: (broker, client) for the bare phase, (broker, iocmatch) end to end.
    bare_cpu: (f64, f64),
    e2e_cpu: (f64, f64),
}

fn measure(storage: &str, w: &Workload, n: usize) -> Option<Row> {
    let broker = kafka::Broker::start_on(storage)?;
    broker.create_topic("logs", 2);
    broker.create_topic("hits", 1);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let lines: Vec<&[u8]> = w.lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
    rt.block_on(broker.produce_many("logs", &lines));
    let broker_pid = broker.child.id();
    let me = std::process::id();

    // Bare consumer: from the first message to the last.
    let bare_cpu;
    let bare = {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", broker.brokers())
            .set("group.id", "bare")
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        c.subscribe(&["logs"]).unwrap();
        let (mut got, mut first) = (0usize, None);
        let mut cpu0 = (0.0, 0.0);
        while got < n {
            if let Some(Ok(_)) = c.poll(Duration::from_millis(500)) {
                first.get_or_insert_with(|| {
                    cpu0 = (cpu_secs(broker_pid), cpu_secs(me));
                    Instant::now()
                });
                got += 1;
            }
        }
        bare_cpu = (cpu_secs(broker_pid) - cpu0.0, cpu_secs(me) - cpu0.1);
        n as f64 / first.unwrap().elapsed().as_secs_f64()
    };

    // iocmatch run, in-process: from the first scored line until every line is scored and every hit acknowledged.
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
    let cfg = broker.service_config(dir.path(), &iocs, "e2e", port, "", "");
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let watcher = std::thread::spawn(move || {
        let (mut first, mut cpu0) = (None, (0.0, 0.0));
        loop {
            std::thread::sleep(Duration::from_millis(10));
            let lines = metric(port, "iocmatch_lines_total").unwrap_or(0.0) as usize;
            if lines > 0 && first.is_none() {
                first = Some(Instant::now());
                cpu0 = (cpu_secs(broker_pid), cpu_secs(me));
            }
            let in_flight = metric(port, "iocmatch_in_flight_messages").unwrap_or(1.0);
            if lines >= n && in_flight == 0.0 {
                let secs = first.unwrap().elapsed().as_secs_f64();
                let cpu = (cpu_secs(broker_pid) - cpu0.0, cpu_secs(me) - cpu0.1);
                let hits = metric(port, "iocmatch_hits_total").unwrap_or(0.0);
                let _ = done_tx.send(());
                return (secs, cpu, hits);
            }
        }
    });
    // The service as `iocmatch run` connects it, less MISP: a refresher over the local indicator file, its cell.
    rt.block_on(async {
        let shutdown = iocmatch::shutdown::Shutdown::new();
        let settings = iocmatch::stream::Settings::from_config(&cfg).unwrap();
        let mut refresher = iocmatch::refresh::Refresher::new(cfg).unwrap();
        refresher.start().await.unwrap();
        let inputs = iocmatch::stream::Inputs {
            cell: refresher.cell(),
            refresh: refresher.metrics.clone(),
            sightings: None,
            retro: None,
        };
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let _ = done_rx.await;
            stop.trigger();
        });
        iocmatch::stream::run(settings, inputs, shutdown).await
    })
    .unwrap();
    let (secs, e2e_cpu, hits) = watcher.join().unwrap();
    Some(Row {
        engine: storage.split("://").next().unwrap_or(storage).to_string(),
        bare,
        e2e: n as f64 / secs,
        hits,
        bare_cpu,
        e2e_cpu,
    })
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let n: usize = env("IOCMATCH_E2E_LINES", 100_000);
    let hit_rate: f64 = env("IOCMATCH_E2E_HIT_RATE", 0.01);
    let engines: String = env("IOCMATCH_E2E_STORAGE", "memory://tansu/,sqlite://tansu.db".to_string());
    let w = generate(&WorkloadSpec::scan(11, 100_000, n).with_hit_rate(hit_rate));
    let rows: Vec<Row> = engines.split(',').filter_map(|e| measure(e.trim(), &w, n)).collect();
    println!(
        "kafka_e2e: {n} lines ({:.1} MB), {} with a planted indicator, 100k indicators, 2 partitions, broker on the same 2 cores",
        w.lines.len() as f64 / 1e6,
        w.planted
    );
    println!(
        "{:<8} {:>12} {:>12} {:>6} {:>6} {:>22} {:>24}",
        "engine",
        "bare lines/s",
        "e2e lines/s",
        "ratio",
        "hits",
        "bare CPU-s broker/client",
        "e2e CPU-s broker/iocmatch"
    );
    for r in rows {
        println!(
            "{:<8} {:>12.0} {:>12.0} {:>6.2} {:>6} {:>22} {:>24}",
            r.engine,
            r.bare,
            r.e2e,
            r.e2e / r.bare,
            r.hits,
            format!("{:.2}/{:.2}", r.bare_cpu.0, r.bare_cpu.1),
            format!("{:.2}/{:.2}", r.e2e_cpu.0, r.e2e_cpu.1),
        );
    }
}
