//! Checked handles. A handle given to C is a token, not a pointer: the value
//! packs a type tag, a slot index and the slot's generation, and the library
//! never dereferences it. A stale handle (slot freed or reused), a handle of
//! another type, or a made-up value is rejected with `invalid_argument`
//! instead of becoming a use-after-free (ffi-support's handle maps work the
//! same way).
use crate::error::{Error, Result};
use std::sync::{Arc, Mutex};

// A token is 64 bits: tag (8) | generation (24) | slot index + 1 (32), and
// C receives it as a pointer value. On a 32-bit target it would not fit:
// squeezing it into 32 bits leaves a generation of a few bits, so a slot
// reused that many times would make a stale handle valid again and act on
// another object, and the ABI's promise (a stale handle is an error, never
// a crash or a wrong object) would hold only most of the time. The hosts
// microsnap serves (KVM microVM hosts) are 64-bit, and no 32-bit build is
// tested, so such a build is refused outright instead of shipping weaker
// handles.
#[cfg(not(target_pointer_width = "64"))]
compile_error!(
    "microsnap supports 64-bit targets only: its C handles are 64-bit checked tokens \
     carried in pointer values (see src/ffi/handles.rs)"
);

const INDEX_BITS: u32 = 32;
const GEN_BITS: u32 = 24;
const GEN_MASK: u64 = (1 << GEN_BITS) - 1;

struct Slot<T> {
    generation: u32,
    value: Option<Arc<T>>,
}

pub struct Registry<T> {
    tag: u8,
    what: &'static str,
    slots: Mutex<(Vec<Slot<T>>, Vec<usize>)>,
}

impl<T> Registry<T> {
    pub const fn new(tag: u8, what: &'static str) -> Self {
        Registry {
            tag,
            what,
            slots: Mutex::new((Vec::new(), Vec::new())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Vec<Slot<T>>, Vec<usize>)> {
        // A panic while holding this lock cannot leave the vector half
        // updated (every update is a single assignment), so poison is benign.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Store a value and return its token (never 0, so never NULL).
    pub fn insert(&self, value: T) -> u64 {
        let mut guard = self.lock();
        let (slots, free) = &mut *guard;
        let index = match free.pop() {
            Some(i) => i,
            None => {
                slots.push(Slot {
                    generation: 0,
                    value: None,
                });
                slots.len() - 1
            }
        };
        let slot = &mut slots[index];
        slot.generation = (slot.generation + 1) & GEN_MASK as u32;
        if slot.generation == 0 {
            slot.generation = 1;
        }
        slot.value = Some(Arc::new(value));
        (u64::from(self.tag) << (INDEX_BITS + GEN_BITS))
            | (u64::from(slot.generation) << INDEX_BITS)
            | (index as u64 + 1)
    }

    fn decode(&self, token: u64) -> Result<(usize, u32)> {
        let tag = (token >> (INDEX_BITS + GEN_BITS)) as u8;
        let generation = ((token >> INDEX_BITS) & GEN_MASK) as u32;
        let index = (token & 0xffff_ffff) as usize;
        if token == 0 {
            return Err(Error::InvalidArgument(format!(
                "{} handle is NULL",
                self.what
            )));
        }
        if tag != self.tag || index == 0 {
            return Err(Error::InvalidArgument(format!(
                "not a {} handle",
                self.what
            )));
        }
        Ok((index - 1, generation))
    }

    /// The live value behind a token.
    pub fn get(&self, token: u64) -> Result<Arc<T>> {
        let (index, generation) = self.decode(token)?;
        let guard = self.lock();
        match guard.0.get(index) {
            Some(Slot {
                generation: g,
                value: Some(v),
            }) if *g == generation => Ok(Arc::clone(v)),
            _ => Err(self.stale()),
        }
    }

    /// Take the value out; the token is stale from now on.
    pub fn remove(&self, token: u64) -> Result<Arc<T>> {
        let (index, generation) = self.decode(token)?;
        let mut guard = self.lock();
        let (slots, free) = &mut *guard;
        match slots.get_mut(index) {
            Some(slot) if slot.generation == generation && slot.value.is_some() => {
                free.push(index);
                slot.value.take().ok_or_else(|| self.stale())
            }
            _ => Err(self.stale()),
        }
    }

    fn stale(&self) -> Error {
        Error::InvalidArgument(format!(
            "stale {} handle (already closed or never opened)",
            self.what
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_foreign_and_reused_tokens_are_rejected() {
        let a: Registry<u32> = Registry::new(1, "a");
        let b: Registry<u32> = Registry::new(2, "b");
        let t = a.insert(7);
        assert_eq!(*a.get(t).unwrap(), 7);
        assert!(b.get(t).is_err(), "foreign");
        assert!(a.get(0).is_err(), "null");
        assert!(a.get(12345).is_err(), "made up");
        a.remove(t).unwrap();
        assert!(a.get(t).is_err(), "stale");
        assert!(a.remove(t).is_err(), "double close");
        let t2 = a.insert(8);
        assert_ne!(t, t2, "reused slot gets a new generation");
        assert!(a.get(t).is_err());
        assert_eq!(*a.get(t2).unwrap(), 8);
    }
}
