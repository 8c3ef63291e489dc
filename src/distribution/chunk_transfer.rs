//! Getting every non-zero chunk of an index into place, for pull: in chunk
//! order, each one copied from a local artifact with the same leaf hash or
//! fetched from the store, decompressed and checked against its leaf hash.
//!
//! The work is cut into jobs: a run of local chunks, or a run of adjacent
//! frames of one pack (one Range request, at most RUN_BYTES compressed and
//! RUN_CHUNKS chunks). Workers (`in_flight` of them) do the reading,
//! fetching, decompressing and hashing, at most a window of jobs ahead of
//! the writer; the calling thread takes the finished jobs in order and hands
//! each chunk to `write`. So the expensive parts use every core and the
//! writer sees chunks in increasing order (a streaming digest needs that).
//! Memory: the window, WINDOW_JOBS * (RUN_BYTES compressed + RUN_CHUNKS * 64
//! KiB decoded) = 64 MiB at most, whatever `in_flight` is.
use super::chunk_index::{hex, ChunkEntry, ChunkIndex};
use super::leaf_cache::{LocalChunk, LocalChunks};
use super::store::Store;
use crate::error::{Error, IoContext, Result};
use crate::integrity::{self, MERKLE_LEAF_SIZE};
use crate::progress::Monitor;
use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

/// Compressed bytes fetched by one Range request at most.
const RUN_BYTES: u64 = 4 * 1024 * 1024;
/// Chunks in one job at most (4 MiB decoded).
const RUN_CHUNKS: usize = 64;
/// Finished jobs held ahead of the writer at most (fewer with fewer
/// requests in flight: twice `in_flight`).
const WINDOW_JOBS: usize = 8;

/// What the transfer did, for the pull report.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub chunks_downloaded: u64,
    pub chunks_reused: u64,
    /// Range bytes received.
    pub bytes_downloaded: u64,
    /// Compressed bytes of the chunks copied locally instead.
    pub bytes_reused: u64,
    pub bytes_copied_locally: u64,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.chunks_downloaded += other.chunks_downloaded;
        self.chunks_reused += other.chunks_reused;
        self.bytes_downloaded += other.bytes_downloaded;
        self.bytes_reused += other.bytes_reused;
        self.bytes_copied_locally += other.bytes_copied_locally;
    }
}

/// One unit of work, in chunk order.
pub enum Job<'a> {
    /// Chunks every one of which a local artifact has.
    Local(Vec<(&'a ChunkEntry, LocalChunk)>),
    /// Adjacent frames of one pack.
    Fetch(&'a [ChunkEntry]),
}

/// Cut the index's chunks into jobs.
pub fn plan<'a>(index: &'a ChunkIndex, local: &LocalChunks) -> Vec<Job<'a>> {
    let chunks = &index.chunks;
    let mut jobs: Vec<Job<'a>> = Vec::new();
    let mut run_start: Option<usize> = None;
    let close_run = |jobs: &mut Vec<Job<'a>>, start: &mut Option<usize>, end: usize| {
        if let Some(s) = start.take() {
            jobs.push(Job::Fetch(&chunks[s..end]));
        }
    };
    for (i, chunk) in chunks.iter().enumerate() {
        if let Some(source) = local.get(&chunk.leaf) {
            close_run(&mut jobs, &mut run_start, i);
            match jobs.last_mut() {
                Some(Job::Local(run)) if run.len() < RUN_CHUNKS => {
                    run.push((chunk, source.clone()))
                }
                _ => jobs.push(Job::Local(vec![(chunk, source.clone())])),
            }
            continue;
        }
        if let Some(s) = run_start {
            let prev = chunks[i - 1];
            let fits = prev.pack == chunk.pack
                && prev.offset + u64::from(prev.length) == chunk.offset
                && chunk.offset + u64::from(chunk.length) - chunks[s].offset <= RUN_BYTES
                && i - s < RUN_CHUNKS;
            if !fits {
                close_run(&mut jobs, &mut run_start, i);
            }
        }
        if run_start.is_none() {
            run_start = Some(i);
        }
    }
    close_run(&mut jobs, &mut run_start, chunks.len());
    jobs
}

/// The packs the jobs fetch from, by index into `index.packs`.
pub fn packs_fetched(jobs: &[Job]) -> Vec<u32> {
    let mut packs: Vec<u32> = jobs
        .iter()
        .filter_map(|job| match job {
            Job::Fetch(run) => Some(run[0].pack),
            Job::Local(_) => None,
        })
        .collect();
    packs.sort_unstable();
    packs.dedup();
    packs
}

/// Run `jobs` on `in_flight` workers; `write(chunk number, bytes)` gets
/// every chunk in order on the calling thread.
pub fn run(
    store: &dyn Store,
    index: &ChunkIndex,
    jobs: &[Job],
    in_flight: usize,
    monitor: &Monitor,
    write: &mut dyn FnMut(u64, &[u8]) -> Result<()>,
) -> Result<Counts> {
    let transfer = Transfer {
        store,
        index,
        jobs,
        monitor,
        next: AtomicUsize::new(0),
        state: Mutex::new(Window::default()),
        ready: Condvar::new(),
        window: (in_flight.max(1) * 2).min(WINDOW_JOBS),
    };
    let workers = in_flight.clamp(1, WINDOW_JOBS).min(jobs.len());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| transfer.work());
        }
        let result = (|| -> Result<Counts> {
            let mut counts = Counts::default();
            for i in 0..jobs.len() {
                monitor.check()?;
                let done = transfer.take(i)?;
                for (number, bytes) in &done.chunks {
                    write(*number, bytes)?;
                }
                counts.add(&done.counts);
                crate::fault::point("pull.chunk_written")?;
            }
            Ok(counts)
        })();
        transfer.stop();
        result
    })
}

/// A finished job: its chunks' bytes in order, and what it cost.
struct Done {
    chunks: Vec<(u64, Vec<u8>)>,
    counts: Counts,
}

struct Transfer<'a, 'm> {
    store: &'a dyn Store,
    index: &'a ChunkIndex,
    jobs: &'a [Job<'a>],
    monitor: &'a Monitor<'m>,
    next: AtomicUsize,
    state: Mutex<Window>,
    ready: Condvar,
    window: usize,
}

#[derive(Default)]
struct Window {
    done: BTreeMap<usize, Result<Done>>,
    /// Jobs the writer has taken.
    taken: usize,
    stopped: bool,
}

impl Transfer<'_, '_> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn work(&self) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(job) = self.jobs.get(i) else { return };
            {
                let mut state = self.lock();
                while !state.stopped && i >= state.taken + self.window {
                    state = self.ready.wait(state).unwrap_or_else(|p| p.into_inner());
                }
                if state.stopped {
                    return;
                }
            }
            // A panic must not leave the writer waiting for job i forever.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.monitor.check().and_then(|()| self.do_job(job))
            }))
            .unwrap_or_else(|_| Err(Error::Internal(format!("chunk transfer job {i} panicked"))));
            let failed = result.is_err();
            self.lock().done.insert(i, result);
            self.ready.notify_all();
            if failed {
                return;
            }
        }
    }

    /// Job `i`'s result, waiting for it (and for cancel).
    fn take(&self, i: usize) -> Result<Done> {
        let mut state = self.lock();
        loop {
            if let Some(result) = state.done.remove(&i) {
                state.taken = i + 1;
                self.ready.notify_all();
                return result;
            }
            if state.stopped {
                return Err(Error::Cancelled);
            }
            let (guard, _) = self
                .ready
                .wait_timeout(state, std::time::Duration::from_millis(100))
                .unwrap_or_else(|p| p.into_inner());
            drop(guard);
            self.monitor.check()?;
            state = self.lock();
        }
    }

    fn stop(&self) {
        self.lock().stopped = true;
        self.ready.notify_all();
    }

    fn do_job(&self, job: &Job) -> Result<Done> {
        let mut done = Done {
            chunks: Vec::new(),
            counts: Counts::default(),
        };
        match job {
            Job::Local(run) => {
                for (chunk, source) in run {
                    let len = self.index.chunk_len(chunk.number);
                    let bytes = match copy_local(source, chunk, len)? {
                        Some(bytes) => {
                            done.counts.chunks_reused += 1;
                            done.counts.bytes_reused += u64::from(chunk.length);
                            done.counts.bytes_copied_locally += len;
                            bytes
                        }
                        // The local copy is not what its leaf list says.
                        None => self
                            .fetch(std::slice::from_ref(*chunk), &mut done.counts)?
                            .remove(0),
                    };
                    done.chunks.push((chunk.number, bytes));
                }
            }
            Job::Fetch(run) => {
                let decoded = self.fetch(run, &mut done.counts)?;
                done.chunks = run.iter().map(|c| c.number).zip(decoded).collect();
            }
        }
        Ok(done)
    }

    /// Fetch the adjacent frames of `run` in one Range request, decode and
    /// check each.
    fn fetch(&self, run: &[ChunkEntry], counts: &mut Counts) -> Result<Vec<Vec<u8>>> {
        let (first, last) = (run[0], run[run.len() - 1]);
        let len = last.offset + u64::from(last.length) - first.offset;
        let pack = &self.index.packs[first.pack as usize];
        let data = self
            .store
            .get_blob_range(&pack.digest(), first.offset, len, self.monitor)?;
        if data.len() as u64 != len {
            return Err(Error::Registry(format!(
                "{} answered {} bytes for a {len}-byte range of {}",
                self.store.describe(),
                data.len(),
                pack.digest()
            )));
        }
        counts.bytes_downloaded += len;
        counts.chunks_downloaded += run.len() as u64;
        let mut at = 0usize;
        run.iter()
            .map(|chunk| {
                let frame = &data[at..at + chunk.length as usize];
                at += chunk.length as usize;
                decode_frame(frame, chunk, self.index.chunk_len(chunk.number))
            })
            .collect()
    }
}

/// Decompress one chunk's frame and check it is the chunk the index names.
/// A frame stored once may serve chunks of two lengths (a file's short last
/// chunk and a full one equal to it zero-padded have one leaf hash): the
/// bytes are cut or zero-extended to `len`, and the leaf hash of the
/// result decides.
fn decode_frame(frame: &[u8], chunk: &ChunkEntry, len: u64) -> Result<Vec<u8>> {
    let mut bytes = zstd::bulk::decompress(frame, MERKLE_LEAF_SIZE as usize).map_err(|e| {
        Error::IntegrityMismatch {
            path: format!("chunk {}", chunk.number),
            expected: format!("a zstd frame of {len} bytes"),
            actual: format!("undecodable data ({e})"),
        }
    })?;
    let decoded = bytes.len();
    // What is written is what is hashed: the check covers the cut too.
    bytes.resize(len as usize, 0);
    let leaf = integrity::merkle_sha256_leaf(&bytes);
    if leaf != chunk.leaf {
        return Err(Error::IntegrityMismatch {
            path: format!("chunk {}", chunk.number),
            expected: format!("{len} bytes with leaf {}", hex(&chunk.leaf)),
            actual: format!("{decoded} bytes with leaf {}", hex(&leaf)),
        });
    }
    Ok(bytes)
}

/// The chunk's bytes from a local artifact, if they have its leaf hash.
/// Only the bytes the pulled chunk covers are read; a shorter local chunk
/// (a smaller file's last) is zero-padded, as its leaf hash is.
fn copy_local(source: &LocalChunk, chunk: &ChunkEntry, len: u64) -> Result<Option<Vec<u8>>> {
    let mut bytes = vec![0u8; len as usize];
    let readable = source.len.min(len) as usize;
    source
        .file
        .read_exact_at(&mut bytes[..readable], source.offset)
        .ctx("read", &source.path)?;
    Ok((integrity::merkle_sha256_leaf(&bytes) == chunk.leaf).then_some(bytes))
}
