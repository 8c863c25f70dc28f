//! The storage contract and its implementations.
//!
//! [`contract`] states what every backend promises (objects, packs, refs with a stated
//! expectation, leases, upkeep); everything above this layer is written against it alone.
//! The implementations: [`dir`] (a store directory, format/store-v1.md, with its helpers
//! [`lock`], [`lease`], [`config`], [`remotes`] and [`clone_setup`]) and [`mem`] (the
//! in-memory model, for tests and the simulator). The HTTP remote is
//! [`crate::net::client`]; the mock remote is [`crate::mock`].

pub mod batch;
pub mod clone_setup;
pub mod config;
pub mod contract;
pub mod dir;
pub mod lease;
pub mod lock;
pub mod mem;
pub mod remotes;

pub use batch::{BatchSink, RollingBatch};
pub use contract::*;
pub use dir::FsStore;
pub use mem::MemStore;
