//! The one rolling batch every pack-writing backend uses: a few objects are kept for
//! loose storage; past that the batch writes packs, committing each as it reaches the
//! store's pack size (or [`pack::BATCH_MAX_OBJECTS`]) and starting the next, so memory and
//! a pack's size stay bounded whatever the transfer. What differs between a directory, an
//! HTTP remote and an object store — where a pack is staged, how it becomes part of the
//! store, what the store already holds — is the [`BatchSink`] it writes into.

use crate::error::Result;
use crate::id::Id;
use crate::pack::{self, PackWriter};
use crate::store::contract::{Batch, RawBlock};

/// The store-specific half of a [`RollingBatch`].
pub trait BatchSink {
    /// Whether the store already holds `id`, so the batch can leave it out.
    fn has(&mut self, id: &Id) -> Result<bool>;
    /// A new, empty pack writer in the store's staging place.
    fn pack_writer(&mut self) -> Result<PackWriter>;
    /// Makes a finished pack part of the store, durably (as every write of the contract);
    /// returns the count the batch reports for it.
    fn commit_pack(&mut self, done: pack::Finished) -> Result<usize>;
    /// Stores a few objects loose, durably; returns how many were new.
    fn put_loose(&mut self, objects: &[(Id, &[u8])]) -> Result<usize>;
    /// The size in bytes at which a pack is committed and the next one begun.
    fn pack_target(&self) -> u64;
    /// How many objects a batch keeps for loose storage before it writes packs; 0 makes
    /// every object go into a pack.
    fn loose_max(&self) -> usize;
}

/// A [`Batch`] over a [`BatchSink`]: loose objects up to the sink's `loose_max`, then
/// packs rolled at its `pack_target`.
pub struct RollingBatch<S: BatchSink> {
    sink: S,
    small: Vec<(Id, Vec<u8>)>,
    writer: Option<PackWriter>,
    /// What committed packs counted.
    committed: usize,
    /// Whether the batch writes packs (it went past `loose_max` objects, or got a raw
    /// block); it stays so after each pack it commits.
    packing: bool,
}

impl<S: BatchSink> RollingBatch<S> {
    /// An empty batch writing into `sink`.
    pub fn new(sink: S) -> RollingBatch<S> {
        RollingBatch {
            sink,
            small: Vec::new(),
            writer: None,
            committed: 0,
            packing: false,
        }
    }

    /// The open pack writer, begun (with the objects kept so far) if there is none.
    fn writer(&mut self) -> Result<&mut PackWriter> {
        let w = match self.writer.take() {
            Some(w) => w,
            None => {
                let mut w = self.sink.pack_writer()?;
                for (id, bytes) in self.small.drain(..) {
                    w.add(id, &bytes)?;
                }
                self.packing = true;
                w
            }
        };
        Ok(self.writer.insert(w))
    }

    fn commit_writer(&mut self) -> Result<()> {
        match self.writer.take() {
            Some(w) if !w.is_empty() => {
                let done = w.finish()?;
                self.committed += self.sink.commit_pack(done)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn roll_if_full(&mut self) -> Result<()> {
        let target = self.sink.pack_target();
        if self
            .writer
            .as_ref()
            .is_some_and(|w| w.size() >= target || w.len() >= pack::BATCH_MAX_OBJECTS)
        {
            self.commit_writer()?;
        }
        Ok(())
    }
}

impl<S: BatchSink> Batch for RollingBatch<S> {
    fn add(&mut self, id: Id, bytes: &[u8]) -> Result<()> {
        let queued = self.small.iter().any(|(s, _)| *s == id)
            || self.writer.as_ref().is_some_and(|w| w.contains(&id));
        if queued || self.sink.has(&id)? {
            return Ok(());
        }
        if self.packing || self.small.len() >= self.sink.loose_max() {
            self.writer()?.add(id, bytes)?;
            self.roll_if_full()
        } else {
            self.small.push((id, bytes.to_vec()));
            Ok(())
        }
    }

    fn add_raw_block(&mut self, block: &RawBlock) -> Result<()> {
        let b = block.entry();
        self.writer()?
            .add_raw_block(&block.frame, b, &block.objects)?;
        self.roll_if_full()
    }

    fn commit(mut self: Box<Self>) -> Result<usize> {
        if self.packing {
            self.commit_writer()?;
            return Ok(self.committed);
        }
        let refs: Vec<(Id, &[u8])> = self.small.iter().map(|(id, b)| (*id, &b[..])).collect();
        self.sink.put_loose(&refs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what the batch hands it; packs in a temporary directory.
    struct Recorder {
        dir: tempfile::TempDir,
        held: Vec<Id>,
        packs: Vec<usize>,
        loose: Vec<Id>,
        loose_max: usize,
        target: u64,
    }

    impl BatchSink for &mut Recorder {
        fn has(&mut self, id: &Id) -> Result<bool> {
            Ok(self.held.contains(id))
        }
        fn pack_writer(&mut self) -> Result<PackWriter> {
            PackWriter::create(self.dir.path(), None, 1)
        }
        fn commit_pack(&mut self, done: pack::Finished) -> Result<usize> {
            self.packs.push(done.objects);
            Ok(done.objects)
        }
        fn put_loose(&mut self, objects: &[(Id, &[u8])]) -> Result<usize> {
            self.loose.extend(objects.iter().map(|(id, _)| *id));
            Ok(objects.len())
        }
        fn pack_target(&self) -> u64 {
            self.target
        }
        fn loose_max(&self) -> usize {
            self.loose_max
        }
    }

    fn recorder(loose_max: usize, target: u64) -> Recorder {
        Recorder {
            dir: tempfile::tempdir().unwrap(),
            held: vec![Id::of(b"held")],
            packs: Vec::new(),
            loose: Vec::new(),
            loose_max,
            target,
        }
    }

    #[test]
    fn a_few_objects_stay_loose_and_what_the_store_holds_is_left_out() {
        let mut r = recorder(2, u64::MAX);
        let mut b = Box::new(RollingBatch::new(&mut r));
        for body in [&b"a"[..], b"b", b"a", b"held"] {
            b.add(Id::of(body), body).unwrap();
        }
        assert_eq!(b.commit().unwrap(), 2);
        assert_eq!(r.loose, vec![Id::of(b"a"), Id::of(b"b")]);
        assert!(r.packs.is_empty());
    }

    #[test]
    fn past_loose_max_packs_roll_at_the_target_and_carry_the_kept_objects() {
        // A target of one byte: every add fills the pack it goes into.
        let mut r = recorder(2, 1);
        let mut b = Box::new(RollingBatch::new(&mut r));
        for body in [&b"a"[..], b"b", b"c", b"d"] {
            b.add(Id::of(body), body).unwrap();
        }
        assert_eq!(b.commit().unwrap(), 4);
        // The third object began a pack holding the two kept ones; the fourth a new pack.
        // (Objects of committed packs are the sink's to know: `has`.)
        assert_eq!(r.packs, vec![3, 1]);
        assert!(r.loose.is_empty());
    }

    #[test]
    fn with_no_loose_objects_everything_is_packed_once() {
        let mut r = recorder(0, u64::MAX);
        let mut b = Box::new(RollingBatch::new(&mut r));
        for body in [&b"a"[..], b"a", b"b"] {
            b.add(Id::of(body), body).unwrap();
        }
        assert_eq!(b.commit().unwrap(), 2);
        assert_eq!(r.packs, vec![2]);
        assert!(r.loose.is_empty());
    }
}
