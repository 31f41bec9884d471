//! The snapshot's byte layout: the same bytes in memory after a build and on disk after `compile`, read in place.
//!
//! ```text
//! header (64 bytes)     magic "IOCMSNAP", format version, section count, build id, snapshot version,
//!                       build time, build duration, indicator count, header checksum
//! section table         one 32-byte entry per section: id, offset, length, xxh3-64 of the section's bytes
//! sections              each 64-byte aligned: fixed-width little-endian records (`#[repr(C)]`, read through
//!                       `bytemuck` casts) and one string arena they point into
//! ```
//!
//! Records hold offsets, never pointers, so the file is position independent and a process maps it and looks up
//! without decoding anything. Opening checks the magic, the version, every section's bounds, alignment, record
//! size and checksum, and the internal offsets the lookups follow (see [`super::Snapshot::open`]), so a truncated,
//! corrupted or foreign file is an error and never a wrong match.

use bytemuck::{Pod, Zeroable};

/// First eight bytes of every snapshot file.
pub const MAGIC: [u8; 8] = *b"IOCMSNAP";
/// Bumped whenever a record or section changes meaning; a file of another version is refused, not guessed at.
pub const FORMAT_VERSION: u32 = 5;
/// Header bytes before the section table.
pub const HEADER_LEN: usize = 64;
/// Every section starts at a multiple of this, so each record type can be viewed in place.
pub const ALIGN: usize = 64;

/// An offset meaning "none" in a 32-bit field (no id, no string, empty slot).
pub const NONE: u32 = u32::MAX;

/// The fixed header, little-endian.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Header {
    pub magic: [u8; 8],
    pub format_version: u32,
    pub sections: u32,
    /// xxh3 over the section checksums: identifies the content, whatever the snapshot version says.
    pub build_id: u64,
    pub version: u64,
    pub built_at_ms: u64,
    pub build_us: u64,
    pub indicators: u32,
    pub _pad: u32,
    /// xxh3 of the header's first 56 bytes and the section table.
    pub checksum: u64,
}

/// One entry of the section table.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct SectionEntry {
    pub id: u32,
    pub _pad: u32,
    pub offset: u64,
    pub len: u64,
    pub xxh3: u64,
}

/// The sections, in file order. Their ids are the format: never renumber, only add (with a version bump).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u32)]
pub enum Section {
    Info = 0,
    Strings,
    Indicators,
    Metas,
    Events,
    StrLists,
    HostSlots,
    HostBloom,
    HostExtraDir,
    HashSlots,
    HashBloom,
    V6UrlSlots,
    V6UrlBloom,
    V6UrlExtraDir,
    Extras,
    Pool,
    V4Summary,
    V4Levels,
    V4Slots,
    V6Levels,
    V6Slots,
    V4Ranks,
    V4Blocks,
}

impl Section {
    pub const ALL: [Section; 23] = [
        Section::Info,
        Section::Strings,
        Section::Indicators,
        Section::Metas,
        Section::Events,
        Section::StrLists,
        Section::HostSlots,
        Section::HostBloom,
        Section::HostExtraDir,
        Section::HashSlots,
        Section::HashBloom,
        Section::V6UrlSlots,
        Section::V6UrlBloom,
        Section::V6UrlExtraDir,
        Section::Extras,
        Section::Pool,
        Section::V4Summary,
        Section::V4Levels,
        Section::V4Slots,
        Section::V6Levels,
        Section::V6Slots,
        Section::V4Ranks,
        Section::V4Blocks,
    ];

    /// The name used in error messages.
    pub fn name(self) -> &'static str {
        match self {
            Section::Info => "info",
            Section::Strings => "strings",
            Section::Indicators => "indicators",
            Section::Metas => "metas",
            Section::Events => "events",
            Section::StrLists => "string lists",
            Section::HostSlots => "host slots",
            Section::HostBloom => "host filter",
            Section::HostExtraDir => "host extras directory",
            Section::HashSlots => "hash slots",
            Section::HashBloom => "hash filter",
            Section::V6UrlSlots => "IPv6 URL slots",
            Section::V6UrlBloom => "IPv6 URL filter",
            Section::V6UrlExtraDir => "IPv6 URL extras directory",
            Section::Extras => "URL and e-mail extras",
            Section::Pool => "id pool",
            Section::V4Summary => "IPv4 /16 summary",
            Section::V4Levels => "IPv4 levels",
            Section::V4Slots => "IPv4 slots",
            Section::V6Levels => "IPv6 levels",
            Section::V6Slots => "IPv6 slots",
            Section::V4Ranks => "IPv4 /16 ranks",
            Section::V4Blocks => "IPv4 /24 blocks",
        }
    }
}

/// Set-wide facts the scanner checks before it looks for a kind at all.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Info {
    /// Bit `n` of word `n / 64` is set when some hex digest has `n` digits.
    pub hash_lens: [u64; 3],
    /// Indicators per [`crate::indicator::Kind`], in `Kind::ALL` order.
    pub counts: [u64; 14],
    pub has_emails: u32,
    pub has_fuzzy: u32,
    /// Keys in the host, hash and IPv6 URL tables, so an empty table costs no probe.
    pub keys: [u32; 3],
    /// 1 when no host key ends in an all-digit label, so the scanner passes over tokens such as `537.36` or
    /// `10.0.0.1` without hashing them for the host table (most dotted tokens in logs are numbers). A URL or
    /// e-mail on an IPv4 address makes it 0; so does a file written before the field existed (it was a spare
    /// word, always 0), where every token is probed as before.
    pub no_digit_tld: u32,
    /// A bit for every host key's last label ([`crate::snapshot::keys::LAST_LABEL_BITS`] of them); with the
    /// last-two-labels markers in the host filter, the keys' [`crate::snapshot::keys::suffix_markers`], so the
    /// scanner drops a token whose last label, or last two, no key has, before hashing the labels to its left (new
    /// in format 4, so every file that opens has them).
    pub last_labels: [u64; 64],
}

/// A string in the arena: byte offset and length (`off == NONE`: absent).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct StrRef {
    pub off: u32,
    pub len: u32,
}

/// A run of [`StrRef`]s in the string-list section.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct ListRef {
    pub first: u32,
    pub count: u32,
}

/// One indicator: its value (as text, in the arena) and its provenance.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct IndRec {
    pub value: StrRef,
    pub meta: u32,
    pub timestamp: u32,
    pub merged: u32,
    /// A URL's host length within `value`.
    pub host_len: u16,
    pub port: u16,
    /// Index into `Kind::ALL`.
    pub kind: u8,
    /// [`IND_UUID`], [`IND_RANGE`].
    pub flags: u8,
    pub _pad: [u8; 2],
    /// Arena offset of the attribute's 16 UUID bytes when [`IND_UUID`] is set: a plain list has none, so a record
    /// is 32 bytes rather than 44 with the UUID inline (120 MB at 10M).
    pub uuid: u32,
}

pub const IND_UUID: u8 = 1;
pub const IND_RANGE: u8 = 2;

/// What attributes share (interned): event, category, MISP type, tags, comment.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct MetaRec {
    pub event: u32,
    pub category: StrRef,
    pub misp_type: StrRef,
    pub tags: ListRef,
    pub comment: StrRef,
}

/// A MISP event.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct EventRec {
    pub id: StrRef,
    pub uuid: StrRef,
    pub info: StrRef,
    pub tags: ListRef,
}

/// A hash-table slot: a 32-bit tag of the key's hash, the key (offset of its length-prefixed bytes in the arena,
/// top bit set when the key has URL or e-mail extras), and two values whose meaning is the table's.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Slot {
    pub tag: u32,
    pub key: u32,
    pub a: u32,
    pub b: u32,
}

/// Set in [`Slot::key`] when the key has extras.
pub const KEY_EXTRAS: u32 = 1 << 31;

/// The extras of one slot: a run in the extras section, found by binary search on the slot index.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct ExtraDir {
    pub slot: u32,
    pub first: u32,
    pub count: u32,
}

/// A URL (the rest after the host, compared exactly) or an e-mail (the lower-cased local part) of a host.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Extra {
    pub text: StrRef,
    pub id: u32,
    /// [`EXTRA_URL`] or [`EXTRA_EMAIL`].
    pub kind: u32,
}

pub const EXTRA_URL: u32 = 0;
pub const EXTRA_EMAIL: u32 = 1;

/// One prefix length's open-addressing table of networks.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Level {
    pub prefix: u32,
    /// First slot in the slot section.
    pub first: u32,
    /// Slot count, a power of two.
    pub cap: u32,
    pub _pad: u32,
}

/// An IPv4 network (masked address) and its ids (`val == NONE`: empty).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct V4Slot {
    pub key: u32,
    pub val: u32,
}

/// An IPv6 network (masked address, big-endian words) and its ids.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct V6Slot {
    pub key: [u32; 4],
    pub val: u32,
}

/// Set in an id value when it points into the pool (`count, id, id, ...`) instead of being the id.
pub const SPILL: u32 = 1 << 31;
