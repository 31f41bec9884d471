//! Reading one batch of chunks ahead of the scan, on a thread of its own: copying a file out of the page cache was
//! a tenth of a single-threaded scan's time, spent while the scanner waited. Memory stays bounded: the reader is at
//! most one batch ahead, and the scanned chunks' buffers come back to it for reuse.

use super::{Chunk, ChunkReader};
use std::io::{self, Read};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};

/// Chunks in input order, and the read error that ended the input after them, if one did.
#[derive(Debug, Default)]
pub struct Batch {
    pub chunks: Vec<Chunk>,
    /// The byte offset the input had reached and the error there.
    pub error: Option<(u64, io::Error)>,
}

/// A [`ChunkReader`] running on its own thread, a batch ahead of the caller.
pub struct ReadAhead {
    batches: Receiver<Batch>,
    spare: Sender<Vec<u8>>,
}

impl ReadAhead {
    /// Starts reading batches of `batch_len` chunks from `reader` on a new thread named after `name` (for logs).
    /// The thread ends at the end of input, after an error, or as soon as this side is dropped.
    pub fn spawn<R: Read + Send + 'static>(
        mut reader: ChunkReader<R>,
        batch_len: usize,
        name: String,
    ) -> io::Result<Self> {
        let (tx, batches) = mpsc::sync_channel::<Batch>(1);
        let (spare, spare_rx) = mpsc::channel::<Vec<u8>>();
        std::thread::Builder::new()
            .name("iocmatch-read".into())
            .spawn(move || {
                let _span = tracing::debug_span!("read_ahead", input = %name).entered();
                read_batches(&mut reader, batch_len.max(1), &tx, &spare_rx);
            })?;
        Ok(ReadAhead { batches, spare })
    }

    /// The next batch; `None` once the input has ended (an empty batch never comes).
    pub fn next_batch(&mut self) -> Option<Batch> {
        self.batches.recv().ok()
    }

    /// Hands a scanned chunk's buffer back, so steady-state reading allocates nothing.
    pub fn recycle(&self, buf: Vec<u8>) {
        // The reader has stopped when this fails; the buffer is then simply freed.
        let _ = self.spare.send(buf);
    }
}

fn read_batches<R: Read>(
    reader: &mut ChunkReader<R>,
    batch_len: usize,
    tx: &SyncSender<Batch>,
    spare: &Receiver<Vec<u8>>,
) {
    loop {
        while let Ok(buf) = spare.try_recv() {
            reader.recycle(buf);
        }
        let mut batch = Batch {
            chunks: Vec::with_capacity(batch_len),
            error: None,
        };
        let mut done = false;
        while batch.chunks.len() < batch_len {
            match reader.next_chunk() {
                Ok(Some(c)) => batch.chunks.push(c),
                Ok(None) => {
                    done = true;
                    break;
                }
                Err(e) => {
                    batch.error = Some((reader.offset(), e));
                    done = true;
                    break;
                }
            }
        }
        if (batch.chunks.is_empty() && batch.error.is_none()) || tx.send(batch).is_err() || done {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(mut ahead: ReadAhead) -> (Vec<u8>, Option<(u64, io::Error)>) {
        let mut all = Vec::new();
        let mut error = None;
        while let Some(b) = ahead.next_batch() {
            for c in b.chunks {
                assert_eq!(c.offset as usize, all.len(), "chunks arrive in input order");
                all.extend_from_slice(&c.data);
                ahead.recycle(c.data);
            }
            if b.error.is_some() {
                error = b.error;
            }
        }
        (all, error)
    }

    #[test]
    fn every_byte_arrives_once_in_order_with_buffers_recycled() {
        let input: Vec<u8> = (0..5000).flat_map(|i| format!("line {i}\n").into_bytes()).collect();
        let reader = ChunkReader::new(io::Cursor::new(input.clone()), 1000, 1 << 20);
        let (all, error) = drain(ReadAhead::spawn(reader, 2, "test".into()).unwrap());
        assert!(error.is_none());
        assert_eq!(all, input);
    }

    #[test]
    fn a_read_error_comes_after_the_chunks_read_before_it_with_its_offset() {
        let data: Vec<u8> = (0..300).flat_map(|i| format!("l{i}\n").into_bytes()).collect();
        let n = data.len() as u64;
        let whole = data.clone();
        let reader = ChunkReader::new(io::Cursor::new(data).chain(crate::source::chunks::Broken), 100, 1 << 20);
        let (all, error) = drain(ReadAhead::spawn(reader, 3, "test".into()).unwrap());
        let (at, e) = error.expect("the error is reported");
        assert_eq!(e.to_string(), "disk on fire");
        // Every whole line read before the error arrives before it; the offset is where reading stopped.
        assert_eq!(at, n);
        assert_eq!(all, whole);
    }

    #[test]
    fn each_chunk_carries_its_last_zeek_fields_header() {
        let mut input = b"#fields\tts\tuid\n".to_vec();
        input.extend((0..40_000).flat_map(|i| format!("{i}\tC{i}\n").into_bytes()));
        input.extend_from_slice(b"#fields\tts\tquery\n1\tx\n");
        input.extend((0..40_000).flat_map(|i| format!("{i}\tQ{i}\n").into_bytes()));
        let reader = ChunkReader::new(io::Cursor::new(input), 1000, 1 << 20);
        let mut ahead = ReadAhead::spawn(reader, 2, "test".into()).unwrap();
        let mut seen = Vec::new();
        while let Some(b) = ahead.next_batch() {
            for c in b.chunks {
                let has = |h: &[u8]| c.data.windows(h.len()).any(|w| w == h);
                let expect = if has(b"#fields\tts\tquery") {
                    Some(vec!["ts".to_string(), "query".to_string()])
                } else if has(b"#fields\tts\tuid") {
                    Some(vec!["ts".to_string(), "uid".to_string()])
                } else {
                    None
                };
                assert_eq!(c.fields_header.as_deref().cloned(), expect, "chunk at {}", c.offset);
                seen.push(expect.is_some());
            }
        }
        assert!(seen.len() > 2 && seen.iter().filter(|s| **s).count() == 2, "{seen:?}");
    }

    /// Endless lines that say when they are dropped, which the reader thread does as it ends.
    struct Endless(std::sync::Arc<std::sync::atomic::AtomicBool>);

    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            buf.fill(b'\n');
            Ok(buf.len())
        }
    }

    impl Drop for Endless {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn dropping_the_scan_side_stops_the_reader() {
        let dropped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = ChunkReader::new(Endless(dropped.clone()), 1000, 100);
        let mut ahead = ReadAhead::spawn(reader, 2, "test".into()).unwrap();
        assert!(ahead.next_batch().is_some());
        drop(ahead);
        let t = std::time::Instant::now();
        while !dropped.load(std::sync::atomic::Ordering::SeqCst) {
            assert!(
                t.elapsed() < std::time::Duration::from_secs(10),
                "the reader thread did not stop"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}
