//! `iocmatch check`: what loaded, what was rejected (with reasons and where), what was merged.

use super::IocArgs;
use anyhow::Result;
use iocmatch::load::LoadStats;
use iocmatch::IndicatorSet;
use std::fmt::Write as _;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub iocs: IocArgs,
}

pub fn run(args: CheckArgs) -> Result<ExitCode> {
    if args.iocs.snapshot.is_some() {
        let (snap, _) = args.iocs.snapshot()?;
        print!("{}", snapshot_report(&snap));
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(path) = &args.iocs.config {
        let rt = super::runtime()?;
        let r = super::refresher(path)?;
        if let Some(role) = rt.block_on(r.check_key()) {
            if role.excess.is_empty() {
                println!(
                    "MISP key role {:?}: no permissions beyond what iocmatch needs",
                    role.role
                );
            } else {
                println!(
                    "MISP key role {:?} can do more than iocmatch needs: {}",
                    role.role,
                    role.excess.join(", ")
                );
            }
        }
        let (snap, stats) = args.iocs.snapshot()?;
        let set: IndicatorSet = snap.indicators().map(|(_, i)| i).collect();
        print!("{}", report(&set, &stats));
        return Ok(ExitCode::SUCCESS);
    }
    let (set, stats) = args.iocs.load()?;
    print!("{}", report(&set, &stats));
    Ok(ExitCode::SUCCESS)
}

/// What a snapshot file holds: its identity and the indicators per kind (validation happened at compile time).
pub fn snapshot_report(snap: &iocmatch::Snapshot) -> String {
    let mut s = String::new();
    let base = snap.base();
    if let Some(p) = base.path() {
        let _ = writeln!(s, "snapshot {}", p.display());
    }
    let _ = writeln!(
        s,
        "version {}, build id {:016x}, {} bytes, opened and verified in {} ms",
        snap.version(),
        base.build_id(),
        base.byte_len(),
        snap.build_duration().as_millis()
    );
    let _ = writeln!(s, "\nindicators by kind:");
    for (k, n) in snap.counts() {
        let _ = writeln!(s, "  {:<10} {n:>9}", k.as_str());
    }
    let _ = writeln!(s, "  {:<10} {:>9}", "total", snap.len());
    s
}

/// The human-readable load report.
pub fn report(set: &IndicatorSet, stats: &LoadStats) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<22} {:>9} {:>9} {:>11}",
        "MISP type", "loaded", "rejected", "duplicates"
    );
    for (t, ts) in &stats.by_type {
        let rej: usize = ts.rejected.values().sum();
        let _ = writeln!(s, "{t:<22} {:>9} {rej:>9} {:>11}", ts.loaded, ts.duplicates);
    }
    let _ = writeln!(s, "\nindicators by kind:");
    for (k, n) in set.counts() {
        let _ = writeln!(s, "  {:<10} {n:>9}", k.as_str());
    }
    let _ = writeln!(s, "  {:<10} {:>9}", "total", set.len());
    let by_reason = stats.rejected_by_reason();
    if !by_reason.is_empty() {
        let _ = writeln!(s, "\nrejected by reason:");
        for (r, n) in &by_reason {
            let _ = writeln!(s, "  {r}: {n}");
            for ((_, rr), examples) in &stats.examples {
                if rr != r {
                    continue;
                }
                for e in examples {
                    let _ = writeln!(s, "    {:?} ({}) at {}: {}", e.value, e.misp_type, e.location, e.detail);
                }
            }
        }
    }
    if !stats.unsupported.is_empty() {
        let _ = writeln!(s, "\nunsupported types (not matched):");
        for (t, n) in &stats.unsupported {
            let _ = writeln!(s, "  {t}: {n}");
        }
    }
    let _ = writeln!(
        s,
        "\nskipped: {} without to_ids, {} deleted (use --all to load them)",
        stats.skipped_not_ids, stats.skipped_deleted
    );
    if !stats.warninglists.is_empty() {
        let _ = writeln!(s, "\nwarninglists applied ({}):", stats.warninglists.len());
        for n in &stats.warninglists {
            let _ = writeln!(s, "  {n}");
        }
    }
    if !stats.filtered.is_empty() {
        let _ = writeln!(s, "\ndropped by warninglists or the allowlist:");
        for (list, n) in &stats.filtered {
            let _ = writeln!(s, "  {list}: {n}");
            for e in stats.filtered_examples.get(list).into_iter().flatten() {
                let _ = writeln!(s, "    {e}");
            }
        }
    }
    if !stats.warnings.is_empty() {
        let _ = writeln!(s, "\nwarnings ({}):", stats.warnings.len());
        for w in &stats.warnings {
            let _ = writeln!(s, "  {w}");
        }
    }
    s
}
