//! Keeping a store sound, through the contract: `check` (verify every ref, chain and
//! object, naming each problem), `gc` (delete what no ref
//! reaches, beside working writers) and `repack` (merge loose objects and packs).

pub mod auto;
pub mod check;
pub mod gc;
pub mod repack;
