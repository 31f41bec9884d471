//! A DNS Response Policy Zone: `name CNAME .` answers NXDOMAIN. A MISP `domain` also gets `*.name`, carrying the
//! suffix rule; a `hostname` gets only its exact name.

use super::{summary, ExportMeta, Rendered};
use crate::indicator::{Indicator, Value};
use std::fmt::Write;

pub(super) fn render(inds: &[&Indicator], meta: &ExportMeta) -> Rendered {
    let mut names: Vec<(String, bool)> = inds
        .iter()
        .filter_map(|i| match &i.value {
            Value::Domain(d) => Some((d.to_string(), true)),
            Value::Hostname(h) => Some((h.to_string(), false)),
            _ => None,
        })
        .collect();
    names.sort();
    let mut b = String::new();
    for (n, wildcard) in &names {
        let _ = writeln!(b, "{n} CNAME .");
        if *wildcard {
            let _ = writeln!(b, "*.{n} CNAME .");
        }
    }
    let serial = meta
        .generated_at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs() as u32);
    let header = format!(
        "; {}\n$TTL 300\n@ IN SOA localhost. hostmaster.localhost. ( {serial} 3600 600 604800 300 )\n@ IN NS localhost.\n",
        summary(meta, inds)
    );
    Rendered {
        name: String::new(),
        header,
        body: b.into_bytes(),
    }
}
