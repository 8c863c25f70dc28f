//! remotelog: keep a node's MVDS message log safe on remotes.
//!
//! A store is a content-addressed object store (CAS) and a name system of refs (NS) on a
//! directory; the format is specified in `format/store-v1.md`. Layers, from the bottom:
//! [`fsutil`] (the one atomic-write path) → [`store`] / [`backend`] (CAS + NS) →
//! [`object`] (typed objects) → [`log`] (pages and logs) → [`check`]. The binary in
//! `src/bin/remotelog/` is a thin CLI over these. See `ARCHITECTURE.md`.
//!
//! Features (all on by default): `server` (`server`, `twirp`: tokio, axum, hyper), `http`
//! (`http_client` and import-spec's Twirp client: ureq), `cli` (what only the binary
//! uses), `s3` (`s3`: object-storage remotes on the HTTP client). Without `http` or `s3`, an
//! `http://` or `s3://` remote is refused with an error that says so.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod backend;
pub mod check;
pub mod clone;
pub mod config;
pub mod demo;
pub mod error;
pub mod forget;
pub mod fsutil;
pub mod gc;
#[cfg(feature = "server")]
pub mod handler;
#[cfg(feature = "http")]
pub mod http_client;
pub mod id;
pub mod lease;
pub mod lock;
pub mod log;
pub mod mock;
pub mod name;
pub mod object;
pub mod pack;
pub mod progress;
pub mod proto;
pub mod remote;
pub mod repack;
#[cfg(feature = "s3")]
pub mod s3;
#[cfg(feature = "server")]
pub mod server;
pub mod sim;
pub mod spec;
pub mod store;
pub mod store_clone;
pub mod sync;
#[cfg(feature = "server")]
pub mod twirp;
pub mod wire;

pub use backend::{Backend, MemStore};
pub use error::{Error, Result};
pub use id::Id;
pub use object::{Entry, Message, Page};
pub use store::FsStore;
