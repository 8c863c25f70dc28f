//! Moving logs between backends: the remotes of a store and how a location opens
//! ([`remote`]), push, pull and status ([`sync`]), and clone ([`clone`]).

pub mod clone;
pub mod remote;
pub mod sync;
