//! Reading input in large chunks of whole lines, as ripgrep does, so scanning threads get big independent units and
//! memory stays bounded whatever the input: a line longer than the cap is cut at the cap and the rest skipped.

use crate::scan::field::{last_header, TsvFields};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// A run of whole lines and where it starts in its input.
#[derive(Debug, Default, Clone)]
pub struct Chunk {
    /// Byte offset of `data[0]` in the input.
    pub offset: u64,
    pub data: Vec<u8>,
    /// Lines in this chunk that were cut at the cap while reading (their tail was never buffered).
    pub truncated: u64,
    /// The Zeek columns of the chunk's last `#fields` header, if it has one: what is in effect for the chunks after
    /// it. Found by the reader, so on the read-ahead thread ([`super::ReadAhead`]), which is mostly idle: the
    /// backward search over each chunk was 4% of a one-thread scan's samples on the thread that hands chunks out.
    pub fields_header: Option<TsvFields>,
}

/// Splits a byte stream into [`Chunk`]s of about `target` bytes, ending on a line boundary.
pub struct ChunkReader<R> {
    inner: R,
    pending: Vec<u8>,
    offset: u64,
    target: usize,
    max_line: usize,
    eof: bool,
    /// Buffers of chunks already scanned, reused for the next ones.
    spare: Vec<Vec<u8>>,
    /// A read error held back while the whole lines read before it are handed out.
    failed: Option<io::Error>,
}

const READ_SIZE: usize = 256 * 1024;

impl<R: Read> ChunkReader<R> {
    pub fn new(inner: R, target: usize, max_line: usize) -> Self {
        ChunkReader {
            inner,
            pending: Vec::with_capacity(target + READ_SIZE),
            offset: 0,
            target: target.max(1),
            max_line: max_line.max(1),
            eof: false,
            spare: Vec::new(),
            failed: None,
        }
    }

    /// Reads up to `READ_SIZE` more bytes into `pending`'s spare capacity: `read_to_end` on a `take` reads into
    /// uninitialised memory, where resizing first would zero every byte before the read overwrote it (a memset
    /// of the whole input, 7% of a scan's instructions). A read error is held in `failed` (what was read before it
    /// stays in `pending`), and `false` says so.
    fn fill(&mut self) -> bool {
        self.pending.reserve(READ_SIZE);
        match (&mut self.inner).take(READ_SIZE as u64).read_to_end(&mut self.pending) {
            Ok(n) => {
                self.eof |= n == 0;
                true
            }
            Err(e) => {
                self.failed = Some(e);
                false
            }
        }
    }

    /// Gives a chunk's buffer back for the next chunks, so steady-state reading allocates (and page-faults in)
    /// nothing new.
    pub fn recycle(&mut self, mut buf: Vec<u8>) {
        if self.spare.len() < 4 && buf.capacity() >= self.target {
            buf.clear();
            self.spare.push(buf);
        }
    }

    fn take(&mut self, upto: usize) -> Chunk {
        let mut next = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.target + READ_SIZE));
        next.extend_from_slice(&self.pending[upto..]);
        self.pending.truncate(upto);
        let data = std::mem::replace(&mut self.pending, next);
        let c = Chunk {
            offset: self.offset,
            data,
            truncated: 0,
            fields_header: None,
        };
        self.offset += upto as u64;
        c
    }

    /// How far into the input the reader has got: where a read error happened.
    pub fn offset(&self) -> u64 {
        self.offset + self.pending.len() as u64
    }

    /// The next chunk, or `None` at the end of input. An I/O error leaves the reader at the failing position.
    pub fn next_chunk(&mut self) -> io::Result<Option<Chunk>> {
        let mut chunk = self.next_lines()?;
        if let Some(c) = &mut chunk {
            c.fields_header = last_header(&c.data);
        }
        Ok(chunk)
    }

    /// The next run of whole lines (or one cut line), before its header is looked for.
    fn next_lines(&mut self) -> io::Result<Option<Chunk>> {
        if self.failed.is_some() {
            return self.after_error();
        }
        while !self.eof && self.pending.len() < self.target {
            if !self.fill() {
                return self.after_error();
            }
        }
        loop {
            if let Some(nl) = memchr::memrchr(b'\n', &self.pending) {
                return Ok(Some(self.take(nl + 1)));
            }
            if self.eof {
                if self.pending.is_empty() {
                    return Ok(None);
                }
                let n = self.pending.len();
                return Ok(Some(self.take(n)));
            }
            if self.pending.len() > self.max_line {
                return Ok(Some(self.cut_long_line()));
            }
            if !self.fill() {
                return self.after_error();
            }
        }
    }

    /// After a read error: the whole lines read before it (up to a chunk of them had been read and were lost with
    /// the error), then the first `max_line` bytes of a line over the cap at the break, as the cap cuts any such
    /// line, and then the error. A shorter partial line at the break is not handed out: its cut could make a
    /// look-alike of an indicator (`evil.co` of `evil.com`). It stays counted in [`Self::offset`].
    fn after_error(&mut self) -> io::Result<Option<Chunk>> {
        if let Some(nl) = memchr::memrchr(b'\n', &self.pending) {
            return Ok(Some(self.take(nl + 1)));
        }
        if self.pending.len() > self.max_line {
            return Ok(Some(self.cut_pending()));
        }
        Err(self.failed.take().expect("a read error is held"))
    }

    /// The first `max_line` bytes of the line over the cap that fills `pending`, as a line of its own counted as
    /// cut; the rest of `pending` is dropped.
    fn cut_pending(&mut self) -> Chunk {
        let mut data = self.pending[..self.max_line].to_vec();
        data.push(b'\n');
        let chunk = Chunk {
            offset: self.offset,
            data,
            truncated: 1,
            fields_header: None,
        };
        self.offset += self.pending.len() as u64;
        self.pending.clear();
        chunk
    }

    /// Emits the first `max_line` bytes of an over-long line and discards the rest of it without buffering it. A
    /// read error while the rest is skipped is held for the next call: the cut line is whole as far as the cap goes.
    fn cut_long_line(&mut self) -> Chunk {
        let chunk = self.cut_pending();
        while !self.eof {
            if !self.fill() {
                break;
            }
            if let Some(nl) = memchr::memchr(b'\n', &self.pending) {
                self.offset += nl as u64 + 1;
                self.pending.drain(..=nl);
                break;
            }
            self.offset += self.pending.len() as u64;
            self.pending.clear();
        }
        chunk
    }
}

/// Opens a file, or stdin for `-`, decompressing gzip when the content starts with the gzip magic bytes.
///
/// A regular file is read directly after peeking at its first two bytes and seeking back, so the chunk reader
/// reads straight into its own buffers; a pipe or stdin is peeked through a buffer, which costs a copy.
pub fn open_input(path: &Path) -> io::Result<Box<dyn Read + Send>> {
    let raw: Box<dyn Read + Send> = if path.as_os_str() == "-" {
        Box::new(io::stdin())
    } else {
        let mut f = File::open(path)?;
        if f.metadata()?.is_file() {
            let mut magic = [0u8; 2];
            let n = (&mut f).take(2).read(&mut magic)?;
            f.seek(SeekFrom::Start(0))?;
            return Ok(if n == 2 && magic == GZIP_MAGIC {
                Box::new(flate2::bufread::MultiGzDecoder::new(io::BufReader::with_capacity(
                    READ_SIZE, f,
                )))
            } else {
                Box::new(f)
            });
        }
        Box::new(f)
    };
    let mut peek = io::BufReader::with_capacity(READ_SIZE, raw);
    let is_gz = io::BufRead::fill_buf(&mut peek)?.starts_with(&GZIP_MAGIC);
    if is_gz {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(peek)))
    } else {
        Ok(Box::new(peek))
    }
}

pub(super) const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Fails every read: what follows the good bytes of a broken input (`good.chain(Broken)`), for the tests of what a
/// read error does to the chunks before it.
#[cfg(test)]
pub(crate) struct Broken;

#[cfg(test)]
impl Read for Broken {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::other("disk on fire"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(input: &[u8], target: usize, max_line: usize) -> Vec<Chunk> {
        let mut r = ChunkReader::new(input, target, max_line);
        let mut v = Vec::new();
        while let Some(c) = r.next_chunk().unwrap() {
            v.push(c);
        }
        v
    }

    #[test]
    fn chunks_end_on_line_boundaries_and_keep_offsets() {
        let input = b"aaa\nbbb\nccc\nddd";
        let cs = chunks(input, 5, 100);
        let joined: Vec<u8> = cs.iter().flat_map(|c| c.data.clone()).collect();
        assert_eq!(joined, input);
        for c in &cs {
            assert_eq!(&input[c.offset as usize..c.offset as usize + c.data.len()], &c.data[..]);
        }
    }

    #[test]
    fn a_read_error_comes_after_every_whole_line_and_cut_line_read_before_it() {
        // Whole lines, then a partial one: the partial one is not handed out.
        let mut r = ChunkReader::new(io::Read::chain(&b"one\ntwo\nthr"[..], Broken), 1 << 20, 1000);
        let c = r.next_chunk().unwrap().unwrap();
        assert_eq!(c.data, b"one\ntwo\n");
        assert_eq!(r.next_chunk().unwrap_err().to_string(), "disk on fire");
        assert_eq!(r.offset(), 11);
        // A line over the cap whose rest was being skipped: its first `max_line` bytes are a line of their own.
        let mut input = b"short\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 5000));
        let mut r = ChunkReader::new(io::Read::chain(&input[..], Broken), 16, 1000);
        assert_eq!(r.next_chunk().unwrap().unwrap().data, b"short\n");
        let cut = r.next_chunk().unwrap().unwrap();
        assert_eq!((cut.offset, cut.truncated, cut.data.len()), (6, 1, 1001));
        assert!(r.next_chunk().is_err());
        assert_eq!(r.offset(), 5006);
    }

    #[test]
    fn long_lines_are_cut_and_the_rest_skipped_with_offsets_intact() {
        let mut input = b"short\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 1_000_000));
        input.extend(b"\nafter\n");
        let cs = chunks(&input, 16, 1000);
        let cut = cs.iter().find(|c| c.truncated == 1).unwrap();
        assert_eq!(cut.offset, 6);
        assert_eq!(cut.data.len(), 1001);
        let last = cs.last().unwrap();
        assert_eq!(&last.data[..], b"after\n");
        assert_eq!(last.offset as usize, input.len() - 6);
        assert!(cs.iter().all(|c| c.data.len() < 300_000));
    }
}
