//! remotelog over HTTP: what client and server agree on ([`wire`]), the client of `http://`
//! remotes ([`client`], feature `http`), and `remotelog serve` ([`server`] with its shared
//! [`handler`] opening and the 3/REMOTE-LOG [`twirp`] services, feature `server`; what
//! `serve --mock` adds, [`actors`]).

#[cfg(feature = "server")]
pub mod actors;
#[cfg(feature = "http")]
pub mod client;
#[cfg(feature = "server")]
pub mod handler;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod twirp;
pub mod wire;
