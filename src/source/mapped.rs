//! Regular files scanned in place through a read-only memory map, as ripgrep scans single files: reading them into
//! buffers on a thread of their own cost a sixth of a one-thread scan (the copy out of the page cache, and the
//! scanning core then pulling every freshly written line from the other core), which a map does not pay at all.
//!
//! A map has one hazard a read does not: a file cut short while it is mapped (`logrotate`'s `copytruncate`) makes
//! every access past its new end a `SIGBUS`, which kills the process. Each mapping is registered in a table the
//! `SIGBUS` handler reads: a fault inside one maps zero pages over the rest of it, marks it as shrunk and returns,
//! so the scan goes on over zeros (in no byte class: no hit), and the caller reports the file as cut short. A
//! fault anywhere else goes to the handler that was there before (Rust's own, which kills the process as before).

use std::fs::File;
use std::io::{self, Read};
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A file mapped for scanning; unregistered from the `SIGBUS` table when dropped.
pub struct MappedFile {
    map: memmap2::Mmap,
    slot: &'static Slot,
}

/// One registered mapping: its address range, and whether a fault found the file shorter.
struct Slot {
    used: AtomicBool,
    start: AtomicUsize,
    end: AtomicUsize,
    shrank: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE: Slot = Slot {
    used: AtomicBool::new(false),
    start: AtomicUsize::new(0),
    end: AtomicUsize::new(0),
    shrank: AtomicBool::new(false),
};

/// Files mapped at once; past this, files are read instead.
static SLOTS: [Slot; 32] = [FREE; 32];

impl MappedFile {
    /// Maps `path` when it is a regular, non-empty file that is not gzip (which is decompressed from a reader);
    /// `None` means read it instead, as for a pipe.
    pub fn open(path: &Path) -> io::Result<Option<MappedFile>> {
        let mut f = File::open(path)?;
        let meta = f.metadata()?;
        if !meta.is_file() || meta.len() < 2 || !handler::installed() {
            return Ok(None);
        }
        let mut magic = [0u8; 2];
        (&mut f).take(2).read_exact(&mut magic)?;
        if magic == super::chunks::GZIP_MAGIC {
            return Ok(None);
        }
        let Some(slot) = SLOTS.iter().find(|s| {
            s.used
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        }) else {
            return Ok(None);
        };
        // SAFETY: the map is read-only and never outlives `self`; a file cut short under it is what the SIGBUS
        // handler is registered for (below), and a file changed in place only changes what is scanned.
        let map = match unsafe { memmap2::Mmap::map(&f) } {
            Ok(m) => m,
            Err(e) => {
                slot.used.store(false, Ordering::Release);
                return Err(e);
            }
        };
        let _ = map.advise(memmap2::Advice::Sequential);
        let start = map.as_ptr() as usize;
        slot.shrank.store(false, Ordering::Relaxed);
        slot.end.store(start + map.len(), Ordering::Relaxed);
        slot.start.store(start, Ordering::Release);
        Ok(Some(MappedFile { map, slot }))
    }

    /// The file's bytes as they were when it was mapped (zeros past its end if it has been cut short since).
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Whether the file was found cut short while it was scanned: the bytes past its new end were read as zeros.
    pub fn shrank(&self) -> bool {
        self.slot.shrank.load(Ordering::Acquire)
    }

    /// Maps the pages of `range` into this process ahead of the scan (`MADV_POPULATE_READ`), so the scanning
    /// thread does not take their page faults: a helper thread calls this for the pieces ahead while one is
    /// scanned. Best effort: where the kernel lacks it (before Linux 5.14), or the file was cut short, the pages
    /// fault in as they are read, as before.
    pub fn populate(&self, range: Range<usize>) {
        #[cfg(target_os = "linux")]
        let _ = self
            .map
            .advise_range(memmap2::Advice::PopulateRead, range.start, range.len());
        #[cfg(not(target_os = "linux"))]
        let _ = range;
    }

    /// Drops the pages of `range` from this process once they are scanned (they stay in the page cache), so a
    /// scan's resident memory stays bounded whatever the file's size.
    pub fn release(&self, range: Range<usize>) {
        // SAFETY: the map is private and read-only, so dropped pages read back from the file (or the zeros above).
        let _ = unsafe {
            self.map
                .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, range.start, range.len())
        };
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        self.slot.start.store(0, Ordering::Release);
        self.slot.end.store(0, Ordering::Release);
        self.slot.used.store(false, Ordering::Release);
    }
}

/// A run of whole lines of a mapped file: [`super::Chunk`] without the copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    pub range: Range<usize>,
    /// Lines cut at the cap: as [`super::Chunk::truncated`], a line over the cap is a span of its first `max_line`
    /// bytes, and the rest of it is skipped.
    pub truncated: u64,
}

/// Splits `bytes` into spans of whole lines of about `target` bytes, as [`super::ChunkReader`] splits a stream:
/// each ends after a line feed (or at the end), and a line longer than `max_line` is a span of its own, cut.
pub fn spans(bytes: &[u8], target: usize, max_line: usize) -> impl Iterator<Item = Span> + '_ {
    let (target, max_line) = (target.max(1), max_line.max(1));
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= bytes.len() {
            return None;
        }
        let window = &bytes[pos..bytes.len().min(pos + target)];
        if pos + window.len() == bytes.len() {
            let s = Span {
                range: pos..bytes.len(),
                truncated: 0,
            };
            pos = bytes.len();
            return Some(s);
        }
        if let Some(nl) = memchr::memrchr(b'\n', window) {
            let s = Span {
                range: pos..pos + nl + 1,
                truncated: 0,
            };
            pos += nl + 1;
            return Some(s);
        }
        // One line longer than `target`: whole when within the cap, else its first `max_line` bytes.
        let line_end = memchr::memchr(b'\n', &bytes[pos..]).map_or(bytes.len(), |i| pos + i + 1);
        let line_len = line_end - pos - usize::from(bytes[line_end - 1] == b'\n');
        let s = if line_len > max_line {
            Span {
                range: pos..pos + max_line,
                truncated: 1,
            }
        } else {
            Span {
                range: pos..line_end,
                truncated: 0,
            }
        };
        pos = line_end;
        Some(s)
    })
}

#[cfg(unix)]
mod handler {
    use super::SLOTS;
    use std::sync::atomic::Ordering;
    use std::sync::OnceLock;

    /// The `SIGBUS` action before ours, to pass faults that are not ours on to.
    static PREVIOUS: OnceLock<Option<libc::sigaction>> = OnceLock::new();

    /// Installs the handler once; false if that failed (files are then read, not mapped).
    pub fn installed() -> bool {
        PREVIOUS.get_or_init(install).is_some()
    }

    fn install() -> Option<libc::sigaction> {
        // SAFETY: plain sigaction calls on zeroed structs; the handler only reads atomics and calls mmap.
        unsafe {
            let mut ours: libc::sigaction = std::mem::zeroed();
            ours.sa_sigaction = on_sigbus as *const () as usize;
            ours.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut ours.sa_mask);
            let mut previous: libc::sigaction = std::mem::zeroed();
            (libc::sigaction(libc::SIGBUS, &ours, &mut previous) == 0).then_some(previous)
        }
    }

    extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
        // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
        let addr = unsafe { (*info).si_addr() } as usize;
        // SAFETY: sysconf is async-signal-safe.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
        for s in &SLOTS {
            let (start, end) = (s.start.load(Ordering::Acquire), s.end.load(Ordering::Acquire));
            if start != 0 && (start..end).contains(&addr) {
                // Zeros from the faulting page to the end of the mapping: the file ends before them.
                let from = addr & !(page - 1);
                let to = end.div_ceil(page) * page;
                // SAFETY: the range lies inside a live read-only mapping of ours, replaced in place (MAP_FIXED) by
                // anonymous zero pages; mmap is a plain system call here.
                let p = unsafe {
                    libc::mmap(
                        from as *mut libc::c_void,
                        to - from,
                        libc::PROT_READ,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                        -1,
                        0,
                    )
                };
                if p != libc::MAP_FAILED {
                    s.shrank.store(true, Ordering::Release);
                    return;
                }
            }
        }
        // Not ours: whatever was there before (Rust's handler, which restores the default and lets the fault kill
        // the process).
        // SAFETY: calling or restoring the previous action, as the kernel would have.
        unsafe {
            match PREVIOUS.get().copied().flatten() {
                Some(prev) if prev.sa_sigaction != libc::SIG_DFL && prev.sa_sigaction != libc::SIG_IGN => {
                    if prev.sa_flags & libc::SA_SIGINFO != 0 {
                        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                            std::mem::transmute(prev.sa_sigaction);
                        f(sig, info, ctx);
                    } else {
                        let f: extern "C" fn(libc::c_int) = std::mem::transmute(prev.sa_sigaction);
                        f(sig);
                    }
                }
                _ => {
                    let mut dfl: libc::sigaction = std::mem::zeroed();
                    dfl.sa_sigaction = libc::SIG_DFL;
                    libc::sigaction(libc::SIGBUS, &dfl, std::ptr::null_mut());
                }
            }
        }
    }
}

#[cfg(not(unix))]
mod handler {
    /// No `SIGBUS` to guard against this way: files are read, not mapped.
    pub fn installed() -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn reference(input: &[u8], target: usize, max_line: usize) -> Vec<(u64, Vec<u8>, u64)> {
        let mut r = super::super::ChunkReader::new(io::Cursor::new(input.to_vec()), target, max_line);
        let mut out = Vec::new();
        while let Some(c) = r.next_chunk().unwrap() {
            out.push((c.offset, c.data, c.truncated));
        }
        out
    }

    /// The lines of a list of chunks as the scanner takes them (without line feeds, cut at the cap), with the cut
    /// lines counted, whether the chunk or the scanner cut them.
    fn lines(chunks: &[(u64, Vec<u8>, u64)], max_line: usize) -> (Vec<(u64, Vec<u8>)>, u64) {
        let mut all = Vec::new();
        let mut cut: u64 = chunks.iter().map(|c| c.2).sum();
        for (off, data, _) in chunks {
            let mut at = 0;
            for l in data.split_inclusive(|b| *b == b'\n') {
                let line = l.strip_suffix(b"\n").unwrap_or(l);
                cut += u64::from(line.len() > max_line);
                all.push((off + at as u64, line[..line.len().min(max_line)].to_vec()));
                at += l.len();
            }
        }
        (all, cut)
    }

    #[test]
    fn spans_hold_the_lines_the_chunk_reader_reads_with_their_offsets_and_cuts() {
        let mut input = Vec::new();
        for i in 0..3000 {
            let len = [3, 40, 700, 2500, 9000][i % 5] + i % 7;
            input.extend((0..len).map(|j| b'a' + (j % 26) as u8));
            input.push(b'\n');
        }
        input.extend_from_slice(b"no line feed at the end");
        for (target, max_line) in [(1000, 5000), (4096, 1 << 20), (100, 100), (65536, 2600)] {
            let ours: Vec<(u64, Vec<u8>, u64)> = spans(&input, target, max_line)
                .map(|s| (s.range.start as u64, input[s.range].to_vec(), s.truncated))
                .collect();
            // The two may cut a long line in different places (the reader only when no line feed is buffered, the
            // scanner the others); the lines scanned and the count of cuts are the same.
            let (got, want) = (
                lines(&ours, max_line),
                lines(&reference(&input, target, max_line), max_line),
            );
            assert!(got.1 > 0 || max_line > 9006, "lines over the cap are cut");
            assert_eq!(got, want, "target {target}, cap {max_line}");
        }
    }

    #[test]
    fn a_file_cut_short_while_mapped_reads_as_zeros_past_its_end_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut f = File::create(&path).unwrap();
        f.write_all(&vec![b'x'; 3 << 20]).unwrap();
        f.sync_all().unwrap();
        let m = MappedFile::open(&path).unwrap().expect("a regular file is mapped");
        assert!(!m.shrank());
        f.set_len((1 << 20) + 100).unwrap();
        // Asking the pages in across the cut is no fault either: the kernel says no, and they fault in as read.
        m.populate(0..3 << 20);
        // Every byte read: those before the cut as written, the rest (the cut page's tail, then the pages the
        // handler mapped) as zeros, with no SIGBUS.
        let bytes = m.bytes();
        let ones = bytes.iter().filter(|b| **b == b'x').count();
        assert_eq!(ones, (1 << 20) + 100);
        assert!(bytes[(1 << 20) + 100..].iter().all(|b| *b == 0));
        assert!(m.shrank());
        drop(m);
        // The slot is free again and a new map of the shorter file is whole.
        let again = MappedFile::open(&path).unwrap().unwrap();
        assert_eq!(again.bytes().len(), (1 << 20) + 100);
        assert!(!again.shrank());
    }

    #[test]
    fn pipes_empty_files_and_gzip_are_read_not_mapped() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        File::create(&empty).unwrap();
        assert!(MappedFile::open(&empty).unwrap().is_none());
        let gz = dir.path().join("log.gz");
        std::fs::write(&gz, [0x1f, 0x8b, 8, 0, 0, 0]).unwrap();
        assert!(MappedFile::open(&gz).unwrap().is_none());
        assert!(MappedFile::open(dir.path()).unwrap().is_none());
    }
}
