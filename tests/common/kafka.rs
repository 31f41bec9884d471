//! A real Kafka-protocol broker for the tests: `tansu`, started per test on a free loopback port with SQLite
//! storage in a temporary directory. `scripts/test.sh` installs it (`cargo install tansu --features dynostore,libsql`).

#![allow(dead_code)]

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Broker {
    pub child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// tansu's `--storage-engine`, relative to `dir`.
    pub storage: String,
}

/// SQLite storage: it keeps messages and committed offsets across a broker restart.
pub const SQLITE: &str = "sqlite://tansu.db";

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn tansu_path() -> Option<PathBuf> {
    let home = std::env::var("HOME").unwrap_or_default();
    let candidates = [
        PathBuf::from(format!("{home}/.cargo/bin/tansu")),
        PathBuf::from("/usr/local/bin/tansu"),
    ];
    if let Ok(o) = Command::new("tansu").arg("--version").output() {
        if o.status.success() {
            return Some(PathBuf::from("tansu"));
        }
    }
    candidates.into_iter().find(|p| p.exists())
}

/// Starts tansu and waits until it listens.
fn spawn(tansu: &Path, dir: &Path, port: u16, storage: &str) -> Child {
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new(tansu)
        .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
        .args(["--storage-engine", storage])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "tansu did not start on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Broker {
    /// Starts a broker, or returns None (with a message) when tansu is not installed outside CI.
    pub fn start() -> Option<Broker> {
        Self::start_on(SQLITE)
    }

    /// Starts a broker on the given storage engine (`sqlite://...` or `memory://...`).
    pub fn start_on(storage: &str) -> Option<Broker> {
        let Some(tansu) = tansu_path() else {
            if std::env::var_os("CI").is_some() {
                panic!("tansu is required in CI: scripts/test.sh installs it");
            }
            eprintln!("SKIPPED: tansu is not installed (cargo install tansu --features dynostore,libsql)");
            return None;
        };
        let (dir, port) = (tempfile::tempdir().unwrap(), free_port());
        let child = spawn(&tansu, dir.path(), port, storage);
        Some(Broker {
            child,
            port,
            dir,
            storage: storage.to_string(),
        })
    }

    /// Stops the broker (as an outage would) and starts it again on the same port and storage.
    pub fn restart(&mut self, down_for: Duration) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(down_for);
        self.child = spawn(&tansu_path().unwrap(), self.dir.path(), self.port, &self.storage);
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn create_topic(&self, name: &str, partitions: u32) {
        let o = Command::new(tansu_path().unwrap())
            .args(["topic", "create", "--broker", &format!("tcp://127.0.0.1:{}", self.port)])
            .args(["--partitions", &partitions.to_string(), name])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "topic create: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    pub fn producer(&self) -> FutureProducer {
        ClientConfig::new()
            .set("bootstrap.servers", self.brokers())
            .set("message.timeout.ms", "30000")
            .create()
            .unwrap()
    }

    /// Produces payloads (None = tombstone); returns (partition, offset) of each.
    pub async fn produce(&self, topic: &str, payloads: &[Option<Vec<u8>>]) -> Vec<(i32, i64)> {
        let p = self.producer();
        let mut out = Vec::new();
        for (i, pl) in payloads.iter().enumerate() {
            let key = format!("k{i}");
            let mut rec: FutureRecord<'_, String, Vec<u8>> = FutureRecord::to(topic).key(&key);
            if let Some(b) = pl {
                rec = rec.payload(b);
            }
            let d = p.send(rec, Duration::from_secs(10)).await.map_err(|(e, _)| e).unwrap();
            out.push((d.partition, d.offset));
        }
        out
    }

    /// Reads the hits topic until `want` hit ids were all seen or the time is up; returns every id seen (with
    /// repeats) and the snapshot-version headers.
    pub fn collect_hits(&self, topic: &str, want: &BTreeSet<String>, timeout: Duration) -> (Vec<String>, Vec<String>) {
        let c = self.reader(topic);
        let (mut ids, mut versions) = (Vec::new(), Vec::new());
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
                let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
                ids.push(v["iocmatch"]["hit_id"].as_str().unwrap().to_string());
                if let Some(h) = m.headers() {
                    if let Some(x) = h.iter().find(|h| h.key == "iocmatch-snapshot-version") {
                        versions.push(String::from_utf8_lossy(x.value.unwrap()).into_owned());
                    }
                }
            }
            let seen: BTreeSet<String> = ids.iter().cloned().collect();
            if want.is_subset(&seen) && !want.is_empty() {
                // Keep reading briefly so extra ids would show.
                let until = Instant::now() + Duration::from_millis(1500);
                while Instant::now() < until {
                    if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                        let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
                        ids.push(v["iocmatch"]["hit_id"].as_str().unwrap().to_string());
                    }
                }
                break;
            }
        }
        (ids, versions)
    }

    /// Produces many lines fast (5,000 in flight), for benches.
    pub async fn produce_many(&self, topic: &str, lines: &[&[u8]]) {
        let producer = self.producer();
        for chunk in lines.chunks(5000) {
            let futs = chunk
                .iter()
                .map(|l| producer.send(FutureRecord::<(), [u8]>::to(topic).payload(l), Duration::from_secs(30)));
            for r in futures_util::future::join_all(futs).await {
                r.map_err(|(e, _)| e).unwrap();
            }
        }
    }

    /// The config of an in-process `iocmatch run` on this broker (benches): the indicator file `iocs`, input topic
    /// `logs`, hits topic `hits`, metrics on `port`, plus `refresh` and `kafka` lines.
    pub fn service_config(
        &self,
        dir: &Path,
        iocs: &Path,
        group: &str,
        port: u16,
        refresh: &str,
        kafka: &str,
    ) -> iocmatch::config::Config {
        iocmatch::config::Config::parse(
            &format!(
                "state_dir = {:?}\niocs = [{:?}]\n[refresh]\n{refresh}\n[kafka]\nbrokers = \"{}\"\ngroup_id = \"{group}\"\ninput_topics = [\"logs\"]\nhits_topic = \"hits\"\n{kafka}\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n",
                dir.join("state").display().to_string(),
                iocs.display().to_string(),
                self.brokers(),
            ),
            "service.toml",
            &std::env::vars().collect::<Vec<_>>(),
        )
        .unwrap()
    }

    /// A consumer of `topic` from its start, in a group of its own that commits nothing.
    fn reader(&self, topic: &str) -> BaseConsumer {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.brokers())
            .set("group.id", format!("reader-{}", free_port()))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        c.subscribe(&[topic]).unwrap();
        c
    }

    /// Reads `n` documents from `topic` (or what came within `timeout`).
    pub fn collect_docs(&self, topic: &str, n: usize, timeout: Duration) -> Vec<serde_json::Value> {
        let c = self.reader(topic);
        let mut docs = Vec::new();
        let deadline = Instant::now() + timeout;
        while docs.len() < n && Instant::now() < deadline {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
                docs.push(serde_json::from_slice(m.payload().unwrap()).unwrap());
            }
        }
        docs
    }

    /// Produces each payload to the given partition, in order.
    pub async fn produce_to(&self, topic: &str, messages: &[(i32, &[u8])]) {
        let p = self.producer();
        for (partition, payload) in messages {
            p.send(
                rdkafka::producer::FutureRecord::<(), [u8]>::to(topic)
                    .partition(*partition)
                    .payload(payload),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        }
    }

    /// The committed offsets of a group for a topic's partitions.
    pub fn committed(&self, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.brokers())
            .set("group.id", group)
            .create()
            .unwrap();
        let mut tpl = rdkafka::TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(topic, p);
        }
        let got = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
        got.elements()
            .iter()
            .map(|e| match e.offset() {
                rdkafka::Offset::Offset(o) => o,
                _ => -1,
            })
            .collect()
    }
}
