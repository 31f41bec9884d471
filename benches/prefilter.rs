//! The prefilter comparison behind the host table's design (issue 14, point 2): which filter rejects a label
//! suffix fastest once the table leaves the caches. Every variant sees the same 64-bit key hashes and is followed,
//! for each suffix it admits, by a probe of a two-thirds-full table of 16-byte slots, so a filter that admits more
//! false positives pays for them in table misses, as the scanner does.
//!
//! - `one_word_4`: the snapshot's filter shape ([`iocmatch::snapshot::table`]): three bits of one 64-bit word, at
//!   4 bits per key (what snapshots of format 2 used);
//! - `one_word_4_prefetch`: the same filter probed in batches of 16: prefetch every word of the batch, then test;
//! - `one_word_8`: the same filter at 8 bits per key: the snapshot's filter since format 3;
//! - `split_block_8`: a cache-line-blocked (split block) Bloom filter as in Parquet and Impala: 256-bit blocks,
//!   eight bits set, one in each 32-bit lane, 8 bits per key;
//! - `binary_fuse_8`: `xorf`'s binary fuse filter with 8-bit fingerprints (about 9 bits per key, three accesses).
//!
//! `cargo bench --bench prefilter` prints each filter's bytes, bits per key, build time and measured false
//! positive rate before timing one million probes of absent keys (real scans miss on almost every suffix).
//! Set `IOCMATCH_PREFILTER_SIZES=10000,1000000` to choose the key counts (default 10k, 1M, 10M).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use iocmatch::snapshot::table::{bloom_admits, bloom_insert, bloom_word, bloom_words};
use std::hint::black_box;
use std::time::{Duration, Instant};
use xorf::{BinaryFuse8, Filter};

const QUERIES: usize = 1_000_000;

/// splitmix64: distinct, well-mixed stand-ins for the scanner's key hashes.
fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Open addressing over 16-byte slots, two-thirds full, as the host table is: what an admitted probe costs.
struct Table {
    slots: Vec<[u64; 2]>,
}

impl Table {
    fn new(keys: &[u64]) -> Self {
        let cap = keys.len() + keys.len() / 2 + 1;
        let mut slots = vec![[0u64; 2]; cap];
        for &k in keys {
            let mut i = Self::start(k, cap);
            while slots[i][0] != 0 {
                i = (i + 1) % cap;
            }
            slots[i] = [k, 1];
        }
        Table { slots }
    }

    fn start(h: u64, cap: usize) -> usize {
        ((h as u32 as u64 * cap as u64) >> 32) as usize
    }

    fn contains(&self, h: u64) -> bool {
        let cap = self.slots.len();
        let mut i = Self::start(h, cap);
        loop {
            match self.slots[i][0] {
                0 => return false,
                k if k == h => return true,
                _ => i = (i + 1) % cap,
            }
        }
    }
}

/// A split block Bloom filter: one 32-byte block per key, one bit in each of its eight 32-bit lanes.
struct SplitBlock {
    blocks: Vec<Block>,
}

#[derive(Clone, Copy, Default)]
#[repr(align(32))]
struct Block([u32; 8]);

const SALT: [u32; 8] = [
    0x47b6_137b,
    0x4497_4d91,
    0x8824_ad5b,
    0xa2b7_289d,
    0x7054_95c7,
    0x2df1_424b,
    0x9efc_4947,
    0x5c6b_fb31,
];

impl SplitBlock {
    fn new(keys: &[u64], bits_per_key: usize) -> Self {
        let n = (keys.len() * bits_per_key / 256 + 1).next_power_of_two();
        let mut f = SplitBlock {
            blocks: vec![Block::default(); n],
        };
        for &k in keys {
            let (b, m) = f.locate(k);
            for (w, m) in f.blocks[b].0.iter_mut().zip(m) {
                *w |= m;
            }
        }
        f
    }

    #[inline(always)]
    fn locate(&self, h: u64) -> (usize, [u32; 8]) {
        let b = ((h >> 32) as usize) & (self.blocks.len() - 1);
        let lo = h as u32;
        (b, SALT.map(|s| 1u32 << (lo.wrapping_mul(s) >> 27)))
    }

    #[inline(always)]
    fn admits(&self, h: u64) -> bool {
        let (b, m) = self.locate(h);
        // Branch-free over the eight lanes, so the test compiles to one vector compare.
        let w = &self.blocks[b].0;
        (0..8).fold(0u32, |miss, i| miss | ((w[i] & m[i] == 0) as u32)) == 0
    }
}

/// The snapshot's filter shape at a chosen size: words for `bits_per_key`, rounded up to a power of two as
/// [`bloom_words`] rounds (which gives the 8-bit size).
fn one_word(keys: &[u64], bits_per_key: usize) -> Vec<u64> {
    let words = (keys.len() * bits_per_key / 64 + 1).next_power_of_two().max(8);
    debug_assert!(bits_per_key != 8 || words == bloom_words(keys.len()));
    let mut bloom = vec![0u64; words];
    for &k in keys {
        bloom_insert(&mut bloom, k);
    }
    bloom
}

/// Probes the one-word filter a batch of 16 at a time: all words prefetched, then tested.
fn prefetched(bloom: &[u64], table: &Table, queries: &[u64]) -> usize {
    let mask = bloom.len() as u64 - 1;
    let mut hits = 0;
    for batch in queries.chunks(16) {
        for &q in batch {
            prefetch(&bloom[bloom_word(q, mask)]);
        }
        for &q in batch {
            hits += (bloom_admits(bloom, q) && table.contains(q)) as usize;
        }
    }
    hits
}

#[inline(always)]
fn prefetch(p: &u64) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it never faults and reads no memory the program sees.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p as *const u64 as *const i8, std::arch::x86_64::_MM_HINT_T0)
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

fn filtered(table: &Table, queries: &[u64], admits: impl Fn(u64) -> bool) -> usize {
    queries.iter().filter(|&&q| admits(q) && table.contains(q)).count()
}

fn report(name: &str, n: usize, bytes: usize, built: Duration, admits: impl Fn(u64) -> bool, queries: &[u64]) {
    let fp = queries.iter().filter(|&&q| admits(q)).count();
    eprintln!(
        "prefilter/{n}/{name}: {:.1} MB, {:.2} bits/key, build {:.2} s, false positives {:.3}%",
        bytes as f64 / 1e6,
        bytes as f64 * 8.0 / n as f64,
        built.as_secs_f64(),
        fp as f64 * 100.0 / queries.len() as f64
    );
}

/// A filter and how long it took to build.
fn timed<T>(build: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let f = build();
    (f, t.elapsed())
}

fn sizes() -> Vec<usize> {
    std::env::var("IOCMATCH_PREFILTER_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 1_000_000, 10_000_000])
}

fn prefilters(c: &mut Criterion) {
    for n in sizes() {
        let keys: Vec<u64> = (0..n as u64).map(mix).collect();
        // Absent keys: the scanner's suffixes almost never are indicators.
        let queries: Vec<u64> = (0..QUERIES as u64).map(|i| mix(i + (1 << 40))).collect();
        let table = Table::new(&keys);

        let (w4, t4) = timed(|| one_word(&keys, 4));
        let (w8, t8) = timed(|| one_word(&keys, 8));
        let (sb, tsb) = timed(|| SplitBlock::new(&keys, 8));
        let (fuse, tf) = timed(|| BinaryFuse8::try_from(&keys).expect("distinct keys build a binary fuse filter"));
        report("one_word_4", n, w4.len() * 8, t4, |q| bloom_admits(&w4, q), &queries);
        report("one_word_8", n, w8.len() * 8, t8, |q| bloom_admits(&w8, q), &queries);
        report(
            "split_block_8",
            n,
            sb.blocks.len() * 32,
            tsb,
            |q| sb.admits(q),
            &queries,
        );
        report(
            "binary_fuse_8",
            n,
            fuse.fingerprints.len(),
            tf,
            |q| fuse.contains(&q),
            &queries,
        );

        let mut g = c.benchmark_group(format!("prefilter/{n}"));
        g.sample_size(10).measurement_time(Duration::from_secs(3));
        g.throughput(Throughput::Elements(QUERIES as u64));
        g.bench_function("table_only", |b| {
            b.iter(|| filtered(&table, black_box(&queries), |_| true))
        });
        g.bench_function("one_word_4", |b| {
            b.iter(|| filtered(&table, black_box(&queries), |q| bloom_admits(&w4, q)))
        });
        g.bench_function("one_word_4_prefetch", |b| {
            b.iter(|| prefetched(&w4, &table, black_box(&queries)))
        });
        g.bench_function("one_word_8", |b| {
            b.iter(|| filtered(&table, black_box(&queries), |q| bloom_admits(&w8, q)))
        });
        g.bench_function("split_block_8", |b| {
            b.iter(|| filtered(&table, black_box(&queries), |q| sb.admits(q)))
        });
        g.bench_function("binary_fuse_8", |b| {
            b.iter(|| filtered(&table, black_box(&queries), |q| fuse.contains(&q)))
        });
        g.finish();
    }
}

criterion_group!(benches, prefilters);
criterion_main!(benches);
