//! Fuzz targets for remotelog's decoders; see `fuzz/README.md`.

pub mod targets;
