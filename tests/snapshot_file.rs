//! The compiled snapshot file through the command line: `compile` writes it, `scan`/`check`/`export --snapshot` map
//! it with the same results as `--iocs`, and every kind of damage is exit 2 with a message naming file and offset.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SAMPLE: &str = "fixtures/iocs/sample-restsearch.json";

fn iocmatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_iocmatch"))
        .args(args)
        .output()
        .unwrap()
}

fn compile(dir: &Path) -> PathBuf {
    let out = dir.join("sample.iocm");
    let o = iocmatch(&["compile", "--iocs", SAMPLE, "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("indicators by kind:"),
        "compile prints the check report: {text}"
    );
    assert!(text.contains(&format!("wrote {}", out.display())), "{text}");
    out
}

/// Every real log file of the fixtures.
fn logs() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("fixtures/logs")
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| !p.ends_with(".md"))
        .collect();
    v.sort();
    v
}

/// (offset, length) of every section, read from the section table (64-byte header, 32-byte entries).
fn sections(bytes: &[u8]) -> Vec<(usize, usize)> {
    let n = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    (0..n)
        .map(|i| {
            let e = &bytes[64 + 32 * i..64 + 32 * (i + 1)];
            (
                u64::from_le_bytes(e[8..16].try_into().unwrap()) as usize,
                u64::from_le_bytes(e[16..24].try_into().unwrap()) as usize,
            )
        })
        .collect()
}

fn refused(file: &Path, needle: &str) {
    let o = iocmatch(&["scan", "--snapshot", file.to_str().unwrap(), "/dev/null"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "exit 2 for {needle}: {err}");
    assert!(err.contains(&file.display().to_string()), "names the file: {err}");
    assert!(err.contains("at byte offset"), "names the offset: {err}");
    assert!(err.contains(needle), "says {needle:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn scan_check_and_export_from_a_compiled_file_equal_the_same_from_iocs() {
    let dir = tempfile::tempdir().unwrap();
    let file = compile(dir.path());
    let f = file.to_str().unwrap();
    let logs = logs();
    let with = |a: &[&str]| -> Vec<String> { a.iter().map(|s| s.to_string()).chain(logs.iter().cloned()).collect() };
    let run = |a: Vec<String>| Command::new(env!("CARGO_BIN_EXE_iocmatch")).args(a).output().unwrap();
    let direct = run(with(&["scan", "--iocs", SAMPLE, "--output", "json"]));
    let mapped = run(with(&["scan", "--snapshot", f, "--output", "json"]));
    let strip = |o: &Output| -> Vec<serde_json::Value> {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                // Only the scan time differs between two runs.
                v.as_object_mut().unwrap().remove("@timestamp");
                v["event"].as_object_mut().unwrap().remove("created");
                for e in v["threat"]["enrichments"].as_array_mut().unwrap() {
                    e["matched"].as_object_mut().unwrap().remove("occurred");
                }
                v
            })
            .collect()
    };
    let (a, b) = (strip(&direct), strip(&mapped));
    assert!(
        !a.is_empty(),
        "the sample logs have hits: {}",
        String::from_utf8_lossy(&direct.stderr)
    );
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y, "hits from the file are the hits from --iocs");
    }

    let check = iocmatch(&["check", "--snapshot", f]);
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success() && text.contains("build id") && text.contains("total"),
        "{text}"
    );

    let (e1, e2) = (dir.path().join("a.intel"), dir.path().join("b.intel"));
    let x1 = iocmatch(&[
        "export",
        "--iocs",
        SAMPLE,
        "--format",
        "zeek",
        "--out",
        e1.to_str().unwrap(),
    ]);
    let x2 = iocmatch(&[
        "export",
        "--snapshot",
        f,
        "--format",
        "zeek",
        "--out",
        e2.to_str().unwrap(),
    ]);
    assert!(x1.status.success() && x2.status.success());
    let body = |p: &Path| -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(body(&e1), body(&e2));
}

#[test]
fn a_flipped_bit_in_any_section_a_truncation_a_foreign_file_or_version_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = compile(dir.path());
    let good = std::fs::read(&file).unwrap();
    let bad = dir.path().join("bad.iocm");
    let secs = sections(&good);
    assert_eq!(secs.len(), 23);
    let mut flipped = 0;
    for &(off, len) in &secs {
        if len == 0 {
            continue;
        }
        let mut b = good.clone();
        b[off + len / 2] ^= 0x10;
        std::fs::write(&bad, &b).unwrap();
        refused(&bad, "checksum mismatch");
        flipped += 1;
    }
    assert!(flipped >= 10, "the sample fills most sections ({flipped})");
    for &(off, len) in &secs {
        for cut in [off, off + len / 2, off + len] {
            if cut >= good.len() || cut == 0 {
                continue;
            }
            std::fs::write(&bad, &good[..cut]).unwrap();
            let o = iocmatch(&["scan", "--snapshot", bad.to_str().unwrap(), "/dev/null"]);
            let err = String::from_utf8_lossy(&o.stderr);
            // A cut inside the last section's padding leaves every section whole: that file is still good.
            if o.status.code() != Some(2) {
                assert!(secs.iter().all(|&(o, l)| o + l <= cut), "cut at {cut} accepted: {err}");
                continue;
            }
            assert!(
                err.contains("truncated") && err.contains("at byte offset"),
                "cut at {cut}: {err}"
            );
        }
    }
    std::fs::write(&bad, &good[..10]).unwrap();
    refused(&bad, "truncated");
    let mut b = good.clone();
    b[..8].copy_from_slice(b"NOTSNAP!");
    std::fs::write(&bad, &b).unwrap();
    refused(&bad, "wrong magic");
    std::fs::write(&bad, std::fs::read(SAMPLE).unwrap()).unwrap();
    refused(&bad, "wrong magic");
    let mut b = good.clone();
    b[8..12].copy_from_slice(&99u32.to_le_bytes());
    std::fs::write(&bad, &b).unwrap();
    refused(&bad, "format version 99");
    let mut b = good.clone();
    b[70] ^= 1;
    std::fs::write(&bad, &b).unwrap();
    refused(&bad, "header checksum");
    let o = iocmatch(&[
        "scan",
        "--snapshot",
        dir.path().join("missing.iocm").to_str().unwrap(),
        "/dev/null",
    ]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn two_compiles_of_one_list_have_the_same_sections_and_build_id() {
    // Enough addresses and networks per prefix length that probe chains collide, and some IPv6, so a layout that
    // followed a hash map's random order would differ between the two processes.
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("list.txt");
    let mut text = String::new();
    for i in 0..6000u32 {
        text.push_str(&format!(
            "{}.{}.{}.{}\n",
            11 + i % 200,
            (i / 7) % 256,
            (i * 13) % 256,
            i % 251
        ));
    }
    for i in 0..600u32 {
        text.push_str(&format!("{}.{}.{}.0/24\n", 20 + i % 150, i % 256, (i * 7) % 256));
        text.push_str(&format!("2001:db8:{:x}::{:x}\n", i, i * 3 + 1));
    }
    std::fs::write(&list, text).unwrap();
    let build = |name: &str| -> (String, Vec<u8>) {
        let out = dir.path().join(name);
        let o = iocmatch(&[
            "compile",
            "--iocs",
            list.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let id = text.split("build id ").nth(1).expect("compile names the build id")[..16].to_string();
        (id, std::fs::read(out).unwrap())
    };
    let (id_a, a) = build("a.iocm");
    let (id_b, b) = build("b.iocm");
    assert_eq!(id_a, id_b, "the same list, the same build id");
    let (sa, sb) = (sections(&a), sections(&b));
    assert_eq!(sa, sb, "the same section table");
    for (off, len) in sa {
        assert!(a[off..off + len] == b[off..off + len], "section at {off} differs");
    }
}
