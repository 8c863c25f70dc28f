//! What a log is made of, with no I/O: validated ref and log names, and the typed
//! objects (messages, pages) with their one deterministic encoding (format/store-v1.md
//! sections 3 and 4).

pub mod name;
pub mod object;
