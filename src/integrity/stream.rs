//! Digests of data that passes by once, in offset order: an upper being
//! unpacked from an archive, or read for one. Computing the digest from the
//! bytes on their way spares the second read of a separate verification
//! pass, and [`DigestThread`] moves the hashing to another core so it runs
//! while the caller decompresses or compresses.
//!
//! The result is the digest [`super::compute`] gives for a file holding the
//! same logical bytes: ranges never fed are zeros (holes).
use super::merkle::{subtree_root, tree_depth, Tree, WINDOW_HEIGHT};
use super::{feed_zeros, Algorithm, Hash, MERKLE_LEAF_SIZE, MSB_SPARSE_PREFIX};
use crate::error::{Error, Result};
use crate::sparse::is_all_zero;
use sha2::{Digest, Sha256};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

const LEAF: usize = MERKLE_LEAF_SIZE as usize;

/// The digest of a file of `size` logical bytes whose data is fed with
/// [`StreamDigest::update_at`] in increasing, non-overlapping offset order.
pub struct StreamDigest {
    algorithm: Algorithm,
    size: u64,
    /// Everything before this offset has been fed (or is a hole).
    pos: u64,
    state: State,
}

enum State {
    /// `sha256` and `msb-sparse-sha256-v1`: every logical byte, holes as zeros.
    Linear(Sha256),
    Merkle(Box<MerkleState>),
}

/// Leaf hashes are kept for one window of 2^WINDOW_HEIGHT leaves, reduced to
/// the window's root when the data moves past it, as in `merkle::digest`:
/// memory does not grow with the size of the file.
struct MerkleState {
    tree: Tree,
    depth: u32,
    window_height: u32,
    zero: Vec<Hash>,
    /// The leaf being filled (gaps zero) and its index.
    leaf: Vec<u8>,
    leaf_index: Option<u64>,
    window: u64,
    window_leaves: Vec<(u64, Hash)>,
    window_roots: Vec<(u64, Hash)>,
}

impl StreamDigest {
    pub fn new(algorithm: Algorithm, size: u64) -> StreamDigest {
        let state = match algorithm {
            Algorithm::Sha256 => State::Linear(Sha256::new()),
            Algorithm::MsbSparseSha256V1 => {
                let mut hasher = Sha256::new();
                hasher.update(MSB_SPARSE_PREFIX);
                hasher.update(size.to_le_bytes());
                State::Linear(hasher)
            }
            Algorithm::MerkleSha256V1 => State::Merkle(MerkleState::new(Tree::Sha256, size)),
            Algorithm::MerkleBlake3V1 => State::Merkle(MerkleState::new(Tree::Blake3, size)),
        };
        StreamDigest {
            algorithm,
            size,
            pos: 0,
            state,
        }
    }

    /// Feed `data`, the bytes at `offset`. Offsets must increase: `offset`
    /// is at or after the end of the previous call's data.
    pub fn update_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|&end| offset >= self.pos && end <= self.size)
            .ok_or_else(|| {
                Error::Internal(format!(
                    "digest fed {} bytes at {offset} after {} of a {} byte file",
                    data.len(),
                    self.pos,
                    self.size
                ))
            })?;
        match &mut self.state {
            State::Linear(hasher) => {
                feed_zeros(hasher, offset - self.pos);
                hasher.update(data);
            }
            State::Merkle(m) => m.update_at(offset, data),
        }
        self.pos = end;
        Ok(())
    }

    /// The digest, as [`super::compute`] writes it (`"sha256:<hex>"` or
    /// `"blake3:<hex>"`).
    pub fn finish(self) -> String {
        let digest: Hash = match self.state {
            State::Linear(mut hasher) => {
                feed_zeros(&mut hasher, self.size - self.pos);
                hasher.finalize().into()
            }
            State::Merkle(m) => m.finish(self.size),
        };
        self.algorithm.format(&digest)
    }
}

impl MerkleState {
    fn new(tree: Tree, size: u64) -> Box<MerkleState> {
        let depth = tree_depth(size.div_ceil(MERKLE_LEAF_SIZE).max(1));
        Box::new(MerkleState {
            tree,
            depth,
            window_height: depth.min(WINDOW_HEIGHT),
            zero: tree.zero_subtrees(depth),
            leaf: vec![0u8; LEAF],
            leaf_index: None,
            window: 0,
            window_leaves: Vec::new(),
            window_roots: Vec::new(),
        })
    }

    fn update_at(&mut self, mut offset: u64, mut data: &[u8]) {
        while !data.is_empty() {
            let index = offset / MERKLE_LEAF_SIZE;
            let within = (offset % MERKLE_LEAF_SIZE) as usize;
            let take = data.len().min(LEAF - within);
            if self.leaf_index != Some(index) {
                self.close_leaf();
                if within == 0 && take == LEAF {
                    // A whole leaf in the caller's buffer: hash it in place.
                    self.push_leaf(index, &data[..LEAF]);
                    offset += LEAF as u64;
                    data = &data[LEAF..];
                    continue;
                }
                self.leaf.fill(0);
                self.leaf_index = Some(index);
            }
            self.leaf[within..within + take].copy_from_slice(&data[..take]);
            offset += take as u64;
            data = &data[take..];
        }
    }

    /// Hash the partly filled leaf, if any (its unfed bytes are zeros).
    fn close_leaf(&mut self) {
        if let Some(index) = self.leaf_index.take() {
            let leaf = std::mem::take(&mut self.leaf);
            self.push_leaf(index, &leaf);
            self.leaf = leaf;
        }
    }

    fn push_leaf(&mut self, index: u64, leaf: &[u8]) {
        let window = index >> self.window_height;
        if window != self.window {
            self.close_window();
            self.window = window;
        }
        // Allocated zeros hash like a hole; skip the hashing.
        let hash = if is_all_zero(leaf) {
            self.zero[0]
        } else {
            self.tree.leaf(leaf)
        };
        self.window_leaves.push((index, hash));
    }

    fn close_window(&mut self) {
        if self.window_leaves.is_empty() {
            return;
        }
        let first = self.window << self.window_height;
        let root = subtree_root(
            self.tree,
            self.window_height,
            first,
            &self.window_leaves,
            &self.zero,
        );
        self.window_roots.push((self.window, root));
        self.window_leaves.clear();
    }

    fn finish(mut self, size: u64) -> Hash {
        self.close_leaf();
        self.close_window();
        let top = subtree_root(
            self.tree,
            self.depth - self.window_height,
            0,
            &self.window_roots,
            &self.zero[self.window_height as usize..],
        );
        self.tree.root(size, self.depth, &top)
    }
}

/// How many fed buffers may wait for the hashing thread. With the buffer in
/// hashing and the one being filled, this bounds memory to a few buffers.
const QUEUE: usize = 4;

/// What the hashing thread receives: data, or the end of the input.
enum Message {
    Data {
        offset: u64,
        buffer: Vec<u8>,
        len: usize,
    },
    End,
}

/// A [`StreamDigest`] computed on its own thread. The caller fills buffers
/// (taken from [`DigestThread::buffer`], so they are reused), writes them
/// where they go, then hands them over with [`DigestThread::feed`].
pub struct DigestThread {
    feed: Option<SyncSender<Message>>,
    returned: Receiver<Vec<u8>>,
    worker: Option<JoinHandle<Result<String>>>,
    buffer_size: usize,
}

impl DigestThread {
    /// Start hashing a file of `size` bytes; buffers hold `buffer_size` bytes.
    pub fn spawn(algorithm: Algorithm, size: u64, buffer_size: usize) -> Result<DigestThread> {
        let (feed, work) = mpsc::sync_channel::<Message>(QUEUE);
        let (give_back, returned) = mpsc::channel();
        let worker = std::thread::Builder::new()
            .name("microsnap-digest".into())
            .spawn(move || {
                let mut digest = StreamDigest::new(algorithm, size);
                for message in work {
                    match message {
                        Message::Data {
                            offset,
                            buffer,
                            len,
                        } => {
                            digest.update_at(offset, &buffer[..len])?;
                            // The caller may be gone (it failed); then the buffer just drops.
                            let _ = give_back.send(buffer);
                        }
                        // Only now: finishing a linear digest hashes the zeros
                        // of the file's tail, which a failed caller must not wait for.
                        Message::End => return Ok(digest.finish()),
                    }
                }
                Err(Error::Cancelled)
            })
            .map_err(|e| Error::Internal(format!("cannot start a hashing thread: {e}")))?;
        Ok(DigestThread {
            feed: Some(feed),
            returned,
            worker: Some(worker),
            buffer_size,
        })
    }

    /// An empty buffer of `buffer_size` bytes: one the thread is done with,
    /// or a new one while all are in flight.
    pub fn buffer(&self) -> Vec<u8> {
        match self.returned.try_recv() {
            Ok(buffer) => buffer,
            Err(_) => vec![0u8; self.buffer_size],
        }
    }

    /// Hash `len` bytes of `buffer`, the data at `offset`. Blocks while the
    /// queue is full, which keeps the caller from running ahead of the hashing.
    pub fn feed(&mut self, offset: u64, buffer: Vec<u8>, len: usize) -> Result<()> {
        if len > buffer.len() {
            return Err(Error::Internal(format!(
                "fed {len} bytes from a buffer of {}",
                buffer.len()
            )));
        }
        // The length travels beside the buffer, which keeps its full size
        // for reuse (cutting it would mean zero-filling it again).
        let message = Message::Data {
            offset,
            buffer,
            len,
        };
        let sent = self.feed.as_ref().map(|f| f.send(message));
        match sent {
            Some(Ok(())) => Ok(()),
            // The thread stopped early: its own error says why.
            _ => Err(self.join().err().unwrap_or_else(|| {
                Error::Internal("the hashing thread stopped before its input ended".into())
            })),
        }
    }

    /// End the input, wait for the thread and return the digest.
    pub fn finish(mut self) -> Result<String> {
        if let Some(feed) = &self.feed {
            // A send error means the thread already stopped; join says why.
            let _ = feed.send(Message::End);
        }
        self.join()
    }

    fn join(&mut self) -> Result<String> {
        drop(self.feed.take());
        match self.worker.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(Error::Internal("the hashing thread panicked".into())),
            None => Err(Error::Internal(
                "the hashing thread was already joined".into(),
            )),
        }
    }
}

impl Drop for DigestThread {
    fn drop(&mut self) {
        // Closing the queue without `End` stops the thread without finishing
        // the digest; wait so no work outlives the call.
        drop(self.feed.take());
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// The buffers of a loop that reads a chunk, writes it where it goes, then
/// has it hashed: with a [`DigestThread`] the buffers cycle through the
/// thread; without one, one buffer is reused. Import and export both read
/// uppers this way.
pub struct ChunkBuffers<'a> {
    digest: Option<&'a mut DigestThread>,
    own: Vec<u8>,
    size: usize,
}

impl<'a> ChunkBuffers<'a> {
    /// Buffers of `size` bytes, fed to `digest` when there is one.
    pub fn new(digest: Option<&'a mut DigestThread>, size: usize) -> ChunkBuffers<'a> {
        ChunkBuffers {
            digest,
            own: Vec::new(),
            size,
        }
    }

    /// A buffer of `size` bytes to read the next chunk into.
    pub fn take(&mut self) -> Vec<u8> {
        match self.digest.as_deref() {
            Some(thread) => thread.buffer(),
            None if self.own.is_empty() => vec![0u8; self.size],
            None => std::mem::take(&mut self.own),
        }
    }

    /// The first `len` bytes of `buffer` (the data at `offset`) are written:
    /// hash them, or keep the buffer for the next chunk.
    pub fn done(&mut self, offset: u64, buffer: Vec<u8>, len: usize) -> Result<()> {
        match self.digest.as_deref_mut() {
            Some(thread) => thread.feed(offset, buffer, len),
            None => {
                self.own = buffer;
                Ok(())
            }
        }
    }
}
