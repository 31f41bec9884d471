//! `iocmatch export`: write the validated set in one native format (Zeek, Suricata, nftables, ipset, RPZ, CSV,
//! JSON lines).

use super::IocArgs;
use anyhow::{Context, Result};
use iocmatch::export::{self, ExportMeta, Format, TypeFilter};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Instant, SystemTime};

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    pub iocs: IocArgs,
    #[arg(long, value_enum)]
    pub format: Format,
    /// The output file (a directory for `suricata`).
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
    /// Only these indicator types (domain, hostname, ipv4, ipv6, url, email, md5, sha1, sha256, ...).
    #[arg(long, value_delimiter = ',')]
    pub types: Vec<String>,
}

pub fn run(args: ExportArgs) -> Result<ExitCode> {
    let filter = TypeFilter::parse(&args.types)?;
    let loaded = Instant::now();
    let (snap, _) = args.iocs.snapshot()?;
    let load_ms = loaded.elapsed().as_millis();
    let misp_url = match &args.iocs.config {
        Some(p) => iocmatch::config::Config::load(p)?.misp.map(|m| m.url),
        None => None,
    };
    let started = Instant::now();
    let meta = ExportMeta {
        version: snap.version(),
        generated_at: SystemTime::now(),
        misp_url,
    };
    let files = export::render(&snap, args.format, &filter, &meta);
    let written = export::write(&args.out, &files).with_context(|| format!("writing {}", args.out.display()))?;
    for w in &written {
        eprintln!("{} {}", if w.changed { "wrote" } else { "unchanged" }, w.path.display());
    }
    eprintln!(
        "{} indicators: loaded and validated in {load_ms} ms, exported in {} ms",
        snap.len(),
        started.elapsed().as_millis()
    );
    Ok(ExitCode::SUCCESS)
}
