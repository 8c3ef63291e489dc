//! Getting every non-zero chunk of an index into place, for pull: each one
//! copied from a local artifact with the same leaf hash or fetched from the
//! store, decompressed and checked against its leaf hash.
//!
//! The work is cut into jobs: a run of local chunks, or a run of adjacent
//! frames of one pack (one Range request, at most RUN_BYTES compressed).
//! Workers (`in_flight` of them) do the reading, fetching, decompressing and
//! hashing. Where the chunks go depends on the [`Writer`]:
//! - `Direct` (the usual case): each worker writes a chunk as soon as it is
//!   checked, in any order. Fetch runs then follow the packs, not the chunk
//!   order: the frames a pull needs are fetched in as few requests as their
//!   layout allows even when local chunks lie between them (a child's new
//!   chunks are adjacent in its new pack but scattered over the upper), and
//!   a frame several chunks share is fetched once. Memory: per worker, one
//!   range and one chunk.
//! - `InOrder` (a streaming digest must see the upper in order): jobs are
//!   runs in chunk order, at most a window of them finished ahead of the
//!   calling thread, which takes them in order and writes their chunks.
//!   Memory: the window, WINDOW_JOBS * (RUN_BYTES compressed + RUN_CHUNKS *
//!   64 KiB decoded) = 64 MiB at most, whatever `in_flight` is.
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
/// Chunks in one in-order job at most (4 MiB decoded).
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

/// One unit of work.
pub enum Job<'a> {
    /// Chunks every one of which a local artifact has.
    Local(Vec<(&'a ChunkEntry, LocalChunk)>),
    /// Frames of one pack, each adjacent to the previous one or the same
    /// frame again, fetched with one Range request.
    Fetch(Vec<&'a ChunkEntry>),
}

/// Writes chunk `number`'s bytes; called from any worker.
pub type DirectWrite<'w> = dyn Fn(u64, &[u8]) -> Result<()> + Sync + 'w;

/// Where the transfer puts the chunks it has checked.
pub enum Writer<'w> {
    /// Called on the workers, in any order.
    Direct(&'w DirectWrite<'w>),
    /// Called on the calling thread, in chunk order.
    InOrder(&'w mut dyn FnMut(u64, &[u8]) -> Result<()>),
}

/// Cut the index's chunks into jobs for `writer`'s kind: in chunk order
/// for `in_order`, else fetch runs in pack order.
pub fn plan<'a>(index: &'a ChunkIndex, local: &LocalChunks, in_order: bool) -> Vec<Job<'a>> {
    if in_order {
        plan_in_order(index, local)
    } else {
        plan_by_pack(index, local)
    }
}

/// Jobs in chunk order: runs of local chunks, and runs of chunks whose
/// frames follow each other in one pack, broken by any local chunk.
fn plan_in_order<'a>(index: &'a ChunkIndex, local: &LocalChunks) -> Vec<Job<'a>> {
    let mut jobs: Vec<Job<'a>> = Vec::new();
    for chunk in &index.chunks {
        if let Some(source) = local.get(&chunk.leaf) {
            match jobs.last_mut() {
                Some(Job::Local(run)) if run.len() < RUN_CHUNKS => {
                    run.push((chunk, source.clone()))
                }
                _ => jobs.push(Job::Local(vec![(chunk, source.clone())])),
            }
            continue;
        }
        match jobs.last_mut() {
            Some(Job::Fetch(run)) if run.len() < RUN_CHUNKS && extends(run, chunk) => {
                run.push(chunk)
            }
            _ => jobs.push(Job::Fetch(vec![chunk])),
        }
    }
    jobs
}

/// Jobs in any order: runs of consecutive local chunks, and the chunks to
/// fetch sorted by where their frames are, cut into Range requests. The two
/// kinds alternate so that workers waiting on the store and workers
/// reading local copies overlap.
fn plan_by_pack<'a>(index: &'a ChunkIndex, local: &LocalChunks) -> Vec<Job<'a>> {
    let mut locals: Vec<Job<'a>> = Vec::new();
    let mut fetched: Vec<&'a ChunkEntry> = Vec::new();
    let mut previous_local: Option<u64> = None;
    for chunk in &index.chunks {
        let Some(source) = local.get(&chunk.leaf) else {
            fetched.push(chunk);
            continue;
        };
        let follows = previous_local == Some(chunk.number.wrapping_sub(1));
        previous_local = Some(chunk.number);
        match locals.last_mut() {
            Some(Job::Local(run)) if follows && run.len() < RUN_CHUNKS => {
                run.push((chunk, source.clone()))
            }
            _ => locals.push(Job::Local(vec![(chunk, source.clone())])),
        }
    }
    fetched.sort_by_key(|c| (c.pack, c.offset, c.number));
    let mut fetches: Vec<Job<'a>> = Vec::new();
    for chunk in fetched {
        match fetches.last_mut() {
            Some(Job::Fetch(run)) if extends(run, chunk) => run.push(chunk),
            _ => fetches.push(Job::Fetch(vec![chunk])),
        }
    }
    let mut jobs = Vec::with_capacity(locals.len() + fetches.len());
    let (mut locals, mut fetches) = (locals.into_iter(), fetches.into_iter());
    loop {
        match (fetches.next(), locals.next()) {
            (None, None) => return jobs,
            (f, l) => jobs.extend(f.into_iter().chain(l)),
        }
    }
}

/// Whether `chunk`'s frame can join the Range request of `run`: same pack,
/// right after the run's last frame (or that frame again), the range
/// staying within RUN_BYTES.
fn extends(run: &[&ChunkEntry], chunk: &ChunkEntry) -> bool {
    let (first, last) = (run[0], run[run.len() - 1]);
    let adjacent = chunk.offset == last.offset + u64::from(last.length)
        || (chunk.offset == last.offset && chunk.length == last.length);
    last.pack == chunk.pack
        && adjacent
        && chunk.offset + u64::from(chunk.length) - first.offset <= RUN_BYTES
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

/// Run `jobs` on `in_flight` workers, every checked chunk going to
/// `writer`. `jobs` must come from [`plan`] for the writer's kind.
pub fn run(
    store: &dyn Store,
    index: &ChunkIndex,
    jobs: &[Job],
    in_flight: usize,
    monitor: &Monitor,
    writer: Writer,
) -> Result<Counts> {
    let (direct, mut in_order) = match writer {
        Writer::Direct(write) => (Some(write), None),
        Writer::InOrder(write) => (None, Some(write)),
    };
    let transfer = Transfer {
        store,
        index,
        jobs,
        monitor,
        direct,
        next: AtomicUsize::new(0),
        state: Mutex::new(Window::default()),
        ready: Condvar::new(),
        // Direct jobs hand back only their counts: nothing to bound.
        window: match direct {
            Some(_) => usize::MAX,
            None => (in_flight.max(1) * 2).min(WINDOW_JOBS),
        },
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
                if let Some(write) = in_order.as_mut() {
                    for (number, bytes) in &done.chunks {
                        write(*number, bytes)?;
                    }
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

/// A finished job: its chunks' bytes in order (in-order transfers only),
/// and what it cost.
struct Done {
    chunks: Vec<(u64, Vec<u8>)>,
    counts: Counts,
}

struct Transfer<'a, 'm> {
    store: &'a dyn Store,
    index: &'a ChunkIndex,
    jobs: &'a [Job<'a>],
    monitor: &'a Monitor<'m>,
    /// Workers write the chunks themselves (else they go into `Done`).
    direct: Option<&'a DirectWrite<'a>>,
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

/// A worker's reusable state: one decompression context, one range buffer
/// and one chunk buffer for all its jobs, instead of allocations per job
/// and chunk.
struct Scratch {
    decompressor: zstd::bulk::Decompressor<'static>,
    range: Vec<u8>,
    chunk: Vec<u8>,
}

impl Transfer<'_, '_> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn work(&self) {
        let mut scratch = match zstd::bulk::Decompressor::new() {
            Ok(decompressor) => Scratch {
                decompressor,
                range: Vec::new(),
                chunk: Vec::with_capacity(MERKLE_LEAF_SIZE as usize),
            },
            Err(e) => {
                let i = self.next.fetch_add(1, Ordering::Relaxed);
                self.lock()
                    .done
                    .insert(i, Err(Error::Internal(format!("start zstd: {e}"))));
                self.ready.notify_all();
                return;
            }
        };
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(job) = self.jobs.get(i) else { return };
            {
                let mut state = self.lock();
                while !state.stopped && i >= state.taken.saturating_add(self.window) {
                    state = self.ready.wait(state).unwrap_or_else(|p| p.into_inner());
                }
                if state.stopped {
                    return;
                }
            }
            // A panic must not leave the writer waiting for job i forever.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.monitor
                    .check()
                    .and_then(|()| self.do_job(job, &mut scratch))
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

    fn do_job(&self, job: &Job, scratch: &mut Scratch) -> Result<Done> {
        let mut done = Done {
            chunks: Vec::new(),
            counts: Counts::default(),
        };
        match job {
            Job::Local(run) => {
                for (chunk, source) in run {
                    let len = self.index.chunk_len(chunk.number);
                    if copy_local(source, chunk, len, &mut scratch.chunk)? {
                        done.counts.chunks_reused += 1;
                        done.counts.bytes_reused += u64::from(chunk.length);
                        done.counts.bytes_copied_locally += len;
                        self.deliver(chunk.number, &scratch.chunk, &mut done)?;
                    } else {
                        // The local copy is not what its leaf list says.
                        self.fetch(&[*chunk], scratch, &mut done)?;
                    }
                }
            }
            Job::Fetch(run) => self.fetch(run, scratch, &mut done)?,
        }
        Ok(done)
    }

    /// Write a checked chunk now, or keep it for the in-order writer.
    fn deliver(&self, number: u64, bytes: &[u8], done: &mut Done) -> Result<()> {
        match self.direct {
            Some(write) => write(number, bytes),
            None => {
                done.chunks.push((number, bytes.to_vec()));
                Ok(())
            }
        }
    }

    /// Fetch the frames of `run` in one Range request, decode and check
    /// each, and deliver it.
    fn fetch(&self, run: &[&ChunkEntry], scratch: &mut Scratch, done: &mut Done) -> Result<()> {
        let first = run[0];
        let end = run
            .iter()
            .map(|c| c.offset + u64::from(c.length))
            .max()
            .unwrap_or(first.offset);
        let len = end - first.offset;
        let pack = &self.index.packs[first.pack as usize];
        let Scratch {
            decompressor,
            range: data,
            chunk: decoded,
        } = scratch;
        self.store
            .read_blob_range(&pack.digest(), first.offset, len, data, self.monitor)?;
        if data.len() as u64 != len {
            return Err(Error::Registry(format!(
                "{} answered {} bytes for a {len}-byte range of {}",
                self.store.describe(),
                data.len(),
                pack.digest()
            )));
        }
        done.counts.bytes_downloaded += len;
        done.counts.chunks_downloaded += run.len() as u64;
        for chunk in run {
            let at = (chunk.offset - first.offset) as usize;
            let frame = &data[at..at + chunk.length as usize];
            let len = self.index.chunk_len(chunk.number);
            decode_frame(decompressor, frame, chunk, len, decoded)?;
            self.deliver(chunk.number, decoded, done)?;
        }
        Ok(())
    }
}

/// Decompress one chunk's frame into `out` and check it is the chunk the
/// index names. A frame stored once may serve chunks of two lengths (a
/// file's short last chunk and a full one equal to it zero-padded have one
/// leaf hash): the bytes are cut or zero-extended to `len`, and the leaf
/// hash of the result decides.
fn decode_frame(
    decompressor: &mut zstd::bulk::Decompressor,
    frame: &[u8],
    chunk: &ChunkEntry,
    len: u64,
    out: &mut Vec<u8>,
) -> Result<()> {
    out.clear();
    out.reserve_exact(MERKLE_LEAF_SIZE as usize);
    decompressor
        .decompress_to_buffer(frame, out)
        .map_err(|e| Error::IntegrityMismatch {
            path: format!("chunk {}", chunk.number),
            expected: format!("a zstd frame of {len} bytes"),
            actual: format!("undecodable data ({e})"),
        })?;
    let decoded = out.len();
    if decoded as u64 > MERKLE_LEAF_SIZE {
        return Err(Error::IntegrityMismatch {
            path: format!("chunk {}", chunk.number),
            expected: format!("a zstd frame of {len} bytes"),
            actual: format!("a frame of {decoded} bytes"),
        });
    }
    // What is written is what is hashed: the check covers the cut too.
    out.resize(len as usize, 0);
    let leaf = integrity::merkle_sha256_leaf(out);
    if leaf != chunk.leaf {
        return Err(Error::IntegrityMismatch {
            path: format!("chunk {}", chunk.number),
            expected: format!("{len} bytes with leaf {}", hex(&chunk.leaf)),
            actual: format!("{decoded} bytes with leaf {}", hex(&leaf)),
        });
    }
    Ok(())
}

/// Read the chunk's bytes from a local artifact into `out`; whether they
/// have its leaf hash. Only the bytes the pulled chunk covers are read; a
/// shorter local chunk (a smaller file's last) is zero-padded, as its leaf
/// hash is.
fn copy_local(
    source: &LocalChunk,
    chunk: &ChunkEntry,
    len: u64,
    out: &mut Vec<u8>,
) -> Result<bool> {
    out.clear();
    out.resize(len as usize, 0);
    let readable = source.len.min(len) as usize;
    source
        .file
        .read_exact_at(&mut out[..readable], source.offset)
        .ctx("read", &source.path)?;
    Ok(integrity::merkle_sha256_leaf(out) == chunk.leaf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distribution::chunk_index::PackRef;
    use std::path::PathBuf;
    use std::sync::Arc;

    fn leaf(n: u8) -> crate::integrity::LeafHash {
        [n; 32]
    }

    /// Chunks 0..10 of one pack. The odd ones are new, their frames
    /// adjacent in pack 0 as push writes them; chunk 9 repeats chunk 1
    /// (one frame); the even ones are local.
    fn child_like() -> (ChunkIndex, LocalChunks) {
        let frame = 1000u32;
        let new = [1u64, 3, 5, 7];
        let mut chunks = Vec::new();
        for number in 0..10u64 {
            let (leaf, offset) = match number {
                9 => (leaf(1), 0),
                n if new.contains(&n) => {
                    let i = new.iter().position(|&x| x == n).unwrap() as u64;
                    (leaf(n as u8), i * u64::from(frame))
                }
                // Local chunks point into the parent's pack 1.
                n => (leaf(n as u8), n * 10_000),
            };
            let pack = u32::from(!new.contains(&number) && number != 9);
            chunks.push(ChunkEntry {
                number,
                leaf,
                pack,
                offset,
                length: frame,
            });
        }
        let index = ChunkIndex {
            upper_size: 10 * MERKLE_LEAF_SIZE,
            packs: vec![
                PackRef {
                    sha256: [1; 32],
                    size: 4000,
                },
                PackRef {
                    sha256: [2; 32],
                    size: 100_000,
                },
            ],
            chunks,
        };
        let file = Arc::new(std::fs::File::open("/dev/null").unwrap());
        let path = Arc::new(PathBuf::from("/dev/null"));
        let local = LocalChunks::of([0u64, 2, 4, 6, 8].map(|n| {
            let chunk = LocalChunk {
                file: Arc::clone(&file),
                path: Arc::clone(&path),
                offset: n * MERKLE_LEAF_SIZE,
                len: MERKLE_LEAF_SIZE,
            };
            (leaf(n as u8), chunk)
        }));
        (index, local)
    }

    fn shape(jobs: &[Job]) -> Vec<(char, Vec<u64>)> {
        jobs.iter()
            .map(|job| match job {
                Job::Local(run) => ('L', run.iter().map(|(c, _)| c.number).collect()),
                Job::Fetch(run) => ('F', run.iter().map(|c| c.number).collect()),
            })
            .collect()
    }

    #[test]
    fn by_pack_one_request_fetches_new_chunks_that_local_ones_separate() {
        let (index, local) = child_like();
        let jobs = plan(&index, &local, false);
        let fetches: Vec<_> = shape(&jobs).into_iter().filter(|j| j.0 == 'F').collect();
        // Pack order; the repeated frame rides along with its first user.
        assert_eq!(fetches, vec![('F', vec![1, 9, 3, 5, 7])]);
        let locals: Vec<u64> = shape(&jobs)
            .into_iter()
            .filter(|j| j.0 == 'L')
            .flat_map(|j| j.1)
            .collect();
        assert_eq!(locals, vec![0, 2, 4, 6, 8]);
        assert_eq!(packs_fetched(&jobs), vec![0]);
    }

    #[test]
    fn in_order_jobs_follow_the_chunks_and_break_at_local_ones() {
        let (index, local) = child_like();
        let jobs = plan(&index, &local, true);
        let numbers: Vec<u64> = shape(&jobs).into_iter().flat_map(|j| j.1).collect();
        assert_eq!(numbers, (0..10).collect::<Vec<_>>());
        assert_eq!(
            shape(&jobs).iter().filter(|j| j.0 == 'F').count(),
            5,
            "{:?}",
            shape(&jobs)
        );
    }

    #[test]
    fn a_fetch_run_stays_within_its_byte_bound_and_its_pack() {
        let frame = 1 << 20;
        let chunks: Vec<ChunkEntry> = (0..10u64)
            .map(|number| ChunkEntry {
                number,
                leaf: leaf(number as u8),
                pack: u32::from(number >= 8),
                offset: (number % 8) * u64::from(frame),
                length: frame,
            })
            .collect();
        let index = ChunkIndex {
            upper_size: 10 * MERKLE_LEAF_SIZE,
            packs: vec![
                PackRef {
                    sha256: [1; 32],
                    size: 8 << 20,
                },
                PackRef {
                    sha256: [2; 32],
                    size: 2 << 20,
                },
            ],
            chunks,
        };
        let jobs = plan(&index, &LocalChunks::default(), false);
        assert_eq!(
            shape(&jobs),
            vec![
                ('F', vec![0, 1, 2, 3]),
                ('F', vec![4, 5, 6, 7]),
                ('F', vec![8, 9])
            ]
        );
    }
}
