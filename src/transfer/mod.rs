//! Moving logs between backends: the remotes of a store and how a location opens
//! ([`remote`]), push, pull and status ([`sync`]), clone ([`clone`]), and import-spec
//! ([`import_spec`]).

pub mod clone;
pub mod import_spec;
pub mod remote;
pub mod sync;
