//! Live lines/s of `iocmatch run` with and without a retro-hunt running beside it, on one broker. Needs `tansu`.
//!
//! Run: `cargo bench --bench kafka_retro`. `IOCMATCH_RETRO_LINES` (default 100000) old lines are produced and
//! consumed live against half the indicators; then `IOCMATCH_RETRO_LINES` new lines are timed with no hunt (phase 1),
//! the other half of the indicators is added (the indicator file changes, the refresher rebuilds, a hunt over the
//! old lines starts, capped at `IOCMATCH_RETRO_MBPS`, default 20), and as many new lines are timed while it runs
//! (phase 2). The hunt's own read rate is reported too.
//!
//! On tansu's memory engine the hunt reads a little less than the old lines: tansu answers the high watermark with
//! the base offset of the partition's last record batch plus one (`tansu-storage` dynostore, `ListOffset::Latest`),
//! so the last batch before the refresh lies past the end the hunt was planned with. A Kafka broker answers the
//! offset after the last record.

#[path = "../tests/common/kafka.rs"]
mod kafka;

use iocmatch::bench::{generate, WorkloadSpec};
use std::time::{Duration, Instant};

fn metric(port: u16, name: &str) -> f64 {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return 0.0;
    };
    if s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").is_err() {
        return 0.0;
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.lines()
        .filter_map(|l| {
            l.strip_prefix(name)
                .and_then(|r| r.rsplit(' ').next()?.parse::<f64>().ok())
        })
        .sum()
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn produce(rt: &tokio::runtime::Runtime, broker: &kafka::Broker, lines: &[&[u8]]) {
    rt.block_on(broker.produce_many("logs", lines));
}

fn wait_until(port: u16, name: &str, at_least: f64) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(600);
    while metric(port, name) < at_least {
        assert!(Instant::now() < deadline, "{name} never reached {at_least}");
        std::thread::sleep(Duration::from_millis(10));
    }
    Instant::now()
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let n: usize = env("IOCMATCH_RETRO_LINES", 100_000);
    let mbps: f64 = env("IOCMATCH_RETRO_MBPS", 20.0);
    let Some(broker) = kafka::Broker::start_on("memory://tansu/") else {
        eprintln!("SKIP: tansu is not installed");
        return;
    };
    broker.create_topic("logs", 2);
    broker.create_topic("hits", 1);
    let w = generate(&WorkloadSpec::scan(11, 20_000, n).with_hit_rate(0.01));
    let lines: Vec<&[u8]> = w.lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    produce(&rt, &broker, &lines);

    let dir = tempfile::tempdir().unwrap();
    let iocs = dir.path().join("iocs.txt");
    let (first, second) = w.indicators.split_at(w.indicators.len() / 2);
    let list =
        |part: &[iocmatch::bench::GenIndicator]| part.iter().map(|i| format!("{}\n", i.value)).collect::<String>();
    std::fs::write(&iocs, list(first)).unwrap();
    let port = kafka::free_port();
    let retro = format!("\n[retro]\nwindow = \"1h\"\nmax_mb_per_s = {mbps:?}");
    let cfg = broker.service_config(
        dir.path(),
        &iocs,
        "retro-bench",
        port,
        "files_interval_secs = 1",
        &retro,
    );
    let shutdown = iocmatch::shutdown::Shutdown::new();
    let stop = shutdown.clone();
    let service = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let settings = iocmatch::stream::Settings::from_config(&cfg).unwrap();
            let mut refresher = iocmatch::refresh::Refresher::new(cfg).unwrap();
            let retro = iocmatch::stream::RetroInput {
                added: refresher.retro_feed(),
                state_dir: refresher.config().state_dir.clone(),
                policy: refresher.policy().clone(),
            };
            refresher.start().await.unwrap();
            let inputs = iocmatch::stream::Inputs {
                cell: refresher.cell(),
                refresh: refresher.metrics.clone(),
                sightings: None,
                retro: Some(retro),
            };
            tokio::spawn(refresher.run(stop.clone(), None));
            iocmatch::stream::run(settings, inputs, stop).await
        })
        .unwrap();
    });
    wait_until(port, "iocmatch_lines_total", n as f64);

    // Phase 1: live only.
    let t = Instant::now();
    produce(&rt, &broker, &lines);
    let live = n as f64 / (wait_until(port, "iocmatch_lines_total", 2.0 * n as f64) - t).as_secs_f64();

    // Phase 2: add the other half; the hunt starts over the 2n old lines; time n new lines beside it.
    // Renamed into place, so the refresher never reads a half-written list.
    let next = dir.path().join("iocs.next");
    std::fs::write(&next, list(first) + &list(second)).unwrap();
    std::fs::rename(&next, &iocs).unwrap();
    let hunt_start = wait_until(port, "iocmatch_retro_hunts_started_total", 1.0);
    let t = Instant::now();
    produce(&rt, &broker, &lines);
    let done = wait_until(port, "iocmatch_lines_total", 3.0 * n as f64);
    let with_hunt = n as f64 / (done - t).as_secs_f64();
    let lag_at_end = metric(port, "iocmatch_retro_lag_records");
    let retro_mb_at_end = metric(port, "iocmatch_retro_bytes_total") / 1e6;
    let finished = wait_until(port, "iocmatch_retro_hunts_finished_total", 1.0);
    let retro_bytes = metric(port, "iocmatch_retro_bytes_total");
    let retro_hits = metric(port, "iocmatch_retro_hits_total");
    let retro_records = metric(port, "iocmatch_retro_records_total");
    let hunts = metric(port, "iocmatch_retro_hunts_started_total");
    shutdown.trigger();
    let _ = service.join();
    println!(
        "kafka_retro: {n} lines a phase ({:.1} MB), 2 partitions, 20k indicators (half added for the hunt), cap {mbps} MB/s, broker on the same cores",
        w.lines.len() as f64 / 1e6
    );
    println!("live lines/s, no hunt:          {live:.0}");
    println!(
        "live lines/s, hunt running:     {with_hunt:.0} ({:.2}x); the hunt had read {retro_mb_at_end:.1} MB and had {lag_at_end} records left when the phase ended",
        with_hunt / live
    );
    println!(
        "hunt: {retro_records} records, {:.1} MB in {:.1} s ({:.1} MB/s), {retro_hits} retro hits, {hunts} hunt(s)",
        retro_bytes / 1e6,
        (finished - hunt_start).as_secs_f64(),
        retro_bytes / 1e6 / (finished - hunt_start).as_secs_f64()
    );
}
