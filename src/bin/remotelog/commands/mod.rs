//! One file per command, each with `run(args, ctx)`: call the library, print the result,
//! return the exit status.

pub mod append;
pub mod cat;
pub mod check;
pub mod clone;
pub mod completions;
pub mod demo;
pub mod fetch;
pub mod forget;
pub mod gc;
pub mod import_spec;
pub mod init;
pub mod log;
pub mod logs;
pub mod pull;
pub mod push;
pub mod remote;
pub mod repack;
pub mod serve;
pub mod sim;
pub mod status;
