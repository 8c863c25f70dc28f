//! Upkeep of a store through the contract's upkeep primitives: `gc` (delete what no ref
//! reaches, beside working writers) and `repack` (merge loose objects and packs).

pub mod gc;
pub mod repack;
