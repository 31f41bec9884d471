//! Reading a snapshot's bytes in place: the header and section checks done once at open, and the typed views the
//! lookups use afterwards.

use super::ips::IpView;
use super::layout::*;
use super::table::TableView;
use bytemuck::Pod;

/// Why a snapshot's bytes were refused: always with the byte offset where the problem is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at byte offset {offset}: {what}")]
pub struct LayoutError {
    pub offset: u64,
    pub what: String,
}

fn err(offset: u64, what: impl Into<String>) -> LayoutError {
    LayoutError {
        offset,
        what: what.into(),
    }
}

/// Every section, as typed slices of the snapshot's bytes.
#[derive(Clone, Copy, Debug)]
pub struct Tables<'a> {
    pub header: Header,
    pub info: &'a Info,
    pub arena: &'a [u8],
    pub inds: &'a [IndRec],
    pub metas: &'a [MetaRec],
    pub events: &'a [EventRec],
    pub lists: &'a [StrRef],
    pub hosts: TableView<'a>,
    pub hashes: TableView<'a>,
    pub v6urls: TableView<'a>,
    pub ips: IpView<'a>,
}

fn pow2(n: usize) -> bool {
    n.is_power_of_two()
}

/// Checks and views `bytes`. With `verify`, every section's xxh3 is checked too (a freshly built buffer skips it).
pub fn tables(bytes: &[u8], verify: bool) -> Result<Tables<'_>, LayoutError> {
    if cfg!(target_endian = "big") {
        return Err(err(0, "snapshot files are little-endian; this host is big-endian"));
    }
    if bytes.len() < HEADER_LEN {
        return Err(err(
            bytes.len() as u64,
            format!(
                "truncated: {} bytes, shorter than the {HEADER_LEN}-byte header",
                bytes.len()
            ),
        ));
    }
    let header: Header = bytemuck::pod_read_unaligned(&bytes[..HEADER_LEN]);
    if header.magic != MAGIC {
        return Err(err(0, "not an iocmatch snapshot (wrong magic)"));
    }
    if header.format_version != FORMAT_VERSION {
        return Err(err(
            8,
            format!(
                "snapshot format version {} (this iocmatch reads version {FORMAT_VERSION}): compile it again",
                header.format_version
            ),
        ));
    }
    let n = header.sections as usize;
    if n != Section::ALL.len() {
        return Err(err(12, format!("{n} sections, expected {}", Section::ALL.len())));
    }
    let table_len = n * std::mem::size_of::<SectionEntry>();
    let Some(table) = bytes.get(HEADER_LEN..HEADER_LEN + table_len) else {
        return Err(err(bytes.len() as u64, "truncated inside the section table"));
    };
    if super::encode::header_checksum(&header, table) != header.checksum {
        return Err(err(
            56,
            "header checksum mismatch (the header or section table is corrupted)",
        ));
    }
    let entries: Vec<SectionEntry> = table.chunks_exact(32).map(bytemuck::pod_read_unaligned).collect();
    let mut raw: Vec<&[u8]> = Vec::with_capacity(n);
    for (s, e) in Section::ALL.iter().zip(&entries) {
        if e.id != *s as u32 {
            return Err(err(e.offset, format!("section {} is where {} belongs", e.id, s.name())));
        }
        let (off, len) = (e.offset as usize, e.len as usize);
        if off % ALIGN != 0 {
            return Err(err(
                e.offset,
                format!("section {} is not {ALIGN}-byte aligned", s.name()),
            ));
        }
        let Some(b) = off.checked_add(len).and_then(|end| bytes.get(off..end)) else {
            return Err(err(
                bytes.len() as u64,
                format!(
                    "truncated: section {} needs bytes {off}..{} of {}",
                    s.name(),
                    off.saturating_add(len),
                    bytes.len()
                ),
            ));
        };
        if verify && xxhash_rust::xxh3::xxh3_64(b) != e.xxh3 {
            return Err(err(
                e.offset,
                format!("section {} checksum mismatch (corrupted)", s.name()),
            ));
        }
        raw.push(b);
    }
    let at = |s: Section| entries[s as usize].offset;
    let view = |s: Section| raw[s as usize];
    fn cast<T: Pod>(b: &[u8], s: Section, at: u64) -> Result<&[T], LayoutError> {
        bytemuck::try_cast_slice(b).map_err(|e| err(at, format!("section {}: {e:?}", s.name())))
    }
    macro_rules! sec {
        ($s:expr) => {
            cast(view($s), $s, at($s))?
        };
    }
    let info: &[Info] = sec!(Section::Info);
    let [info] = info else {
        return Err(err(at(Section::Info), "info section has the wrong size"));
    };
    let arena = view(Section::Strings);
    let extras: &[Extra] = sec!(Section::Extras);
    let pool: &[u32] = sec!(Section::Pool);
    let table =
        |slots: Section, bloom: Section, dir: Option<Section>, len: u32| -> Result<TableView<'_>, LayoutError> {
            let t = TableView {
                slots: cast(view(slots), slots, at(slots))?,
                bloom: cast(view(bloom), bloom, at(bloom))?,
                extra_dir: match dir {
                    Some(d) => cast(view(d), d, at(d))?,
                    None => &[],
                },
                extras,
                arena,
                len: len as usize,
            };
            if t.len > t.slots.len() / 3 * 2 + 1 {
                return Err(err(
                    at(slots),
                    format!("{} holds more keys than slots allow", slots.name()),
                ));
            }
            if t.slots.len() < 8 || !pow2(t.bloom.len()) {
                return Err(err(
                    at(slots),
                    format!(
                        "{} is shorter than 8 slots or its filter not a power of two long",
                        slots.name()
                    ),
                ));
            }
            if t.extra_dir
                .iter()
                .any(|d| d.first as usize + d.count as usize > extras.len())
            {
                return Err(err(at(slots), "an extras run points past the extras section"));
            }
            Ok(t)
        };
    let hosts = table(
        Section::HostSlots,
        Section::HostBloom,
        Some(Section::HostExtraDir),
        info.keys[0],
    )?;
    let hashes = table(Section::HashSlots, Section::HashBloom, None, info.keys[1])?;
    let v6urls = table(
        Section::V6UrlSlots,
        Section::V6UrlBloom,
        Some(Section::V6UrlExtraDir),
        info.keys[2],
    )?;
    let ips = IpView {
        v4_16: sec!(Section::V4Summary),
        v4_ranks: sec!(Section::V4Ranks),
        v4_blocks: sec!(Section::V4Blocks),
        v4_levels: sec!(Section::V4Levels),
        v4_slots: sec!(Section::V4Slots),
        v6_levels: sec!(Section::V6Levels),
        v6_slots: sec!(Section::V6Slots),
        pool,
    };
    if ips.v4_16.len() != 1024 {
        return Err(err(at(Section::V4Summary), "IPv4 summary has the wrong size"));
    }
    if !super::ips::v4_blocks_fit(ips.v4_16, ips.v4_ranks, ips.v4_blocks) {
        return Err(err(
            at(Section::V4Ranks),
            "the IPv4 /24 blocks do not fit the /16 summary",
        ));
    }
    let level_ok = |l: &Level, slots: usize| pow2(l.cap as usize) && l.first as usize + l.cap as usize <= slots;
    if !ips
        .v4_levels
        .iter()
        .all(|l| level_ok(l, ips.v4_slots.len()) && l.prefix <= 32)
        || !ips
            .v6_levels
            .iter()
            .all(|l| level_ok(l, ips.v6_slots.len()) && l.prefix <= 128)
    {
        return Err(err(at(Section::V4Levels), "an IP level points past its slots"));
    }
    let inds: &[IndRec] = sec!(Section::Indicators);
    if inds.len() != header.indicators as usize {
        return Err(err(
            at(Section::Indicators),
            format!(
                "{} indicator records, the header says {}",
                inds.len(),
                header.indicators
            ),
        ));
    }
    Ok(Tables {
        header,
        info,
        arena,
        inds,
        metas: sec!(Section::Metas),
        events: sec!(Section::Events),
        lists: sec!(Section::StrLists),
        hosts,
        hashes,
        v6urls,
        ips,
    })
}

impl<'a> Tables<'a> {
    /// `len` bytes of the arena at `off` (`None` for an absent reference or one out of bounds): every read of the
    /// arena by reference goes through here, so a damaged offset is a missing value, never a panic.
    pub fn bytes(&self, off: u32, len: u32) -> Option<&'a [u8]> {
        if off == NONE {
            return None;
        }
        self.arena.get(off as usize..(off as usize).checked_add(len as usize)?)
    }

    /// A string of the arena (`None` for an absent one or one out of bounds).
    pub fn str(&self, r: StrRef) -> Option<&'a str> {
        std::str::from_utf8(self.bytes(r.off, r.len)?).ok()
    }

    /// The strings of a list.
    pub fn list(&self, l: ListRef) -> Vec<&'a str> {
        let Some(refs) = self.lists.get(l.first as usize..l.first as usize + l.count as usize) else {
            return Vec::new();
        };
        refs.iter().filter_map(|r| self.str(*r)).collect()
    }
}
