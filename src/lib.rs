//! remotelog: keep a node's MVDS message log safe on remotes.
//!
//! A store is a content-addressed object store (CAS) and a name system of refs (NS); the
//! format is specified in `format/store-v1.md`. The modules are layers, each using only
//! those below it (`tests/layers.rs` holds them to it; `ARCHITECTURE.md` draws them):
//!
//! - [`error`], [`id`], [`progress`], [`human`] (sizes for people), [`model`] (names,
//!   objects), [`fsutil`] (the one durable-write path): the base;
//! - [`pack`]: the pack format, its reader and writer;
//! - [`store`]: the storage contract every backend keeps, a store directory, the memory
//!   model;
//! - [`log`]: logs over any backend: append, walk, forget;
//! - [`spec`]: the 3/REMOTE-LOG wire form of logs;
//! - [`upkeep`]: check, gc and repack through the contract;
//! - [`net`]: the HTTP client and `remotelog serve`;
//! - [`s3`]: object-storage remotes (`s3://BUCKET/PREFIX`), beside `net`;
//! - [`transfer`]: remotes, push, pull, clone, import-spec;
//! - [`mock`] and [`sim`]: remotes that behave like real networks, and the sync simulator;
//! - [`demo`]: the end-to-end scenario of `remotelog demo`.
//!
//! The binary in `src/bin/remotelog/` is a thin CLI over these.
//!
//! Features (all on by default): `server` (`net::server`: tokio, axum, hyper), `http`
//! (`net::client` and import-spec's Twirp client: ureq), `cli` (what only the binary
//! uses), `s3` (`s3`: object-storage remotes on the HTTP client). Without `http` or `s3`,
//! an `http://` or `s3://` remote is refused with an error that says so.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod demo;
pub mod error;
pub mod fsutil;
pub mod human;
pub mod id;
pub mod log;
pub mod mock;
pub mod model;
pub mod net;
pub mod pack;
pub mod progress;
#[cfg(feature = "s3")]
pub mod s3;
pub mod sim;
pub mod spec;
pub mod store;
pub mod transfer;
pub mod upkeep;

pub use error::{Error, Result};
pub use id::Id;
pub use model::object::{Entry, Message, Page};
pub use store::{Backend, FsStore, MemStore};
