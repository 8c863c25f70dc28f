//! Sizes as people read them in messages and summaries (`98.7 MB`, not `98678938 bytes`).
//! Exact byte counts stay where they are the point: format errors, offsets, `--json`.

/// `bytes` in decimal units with one decimal: `512 B`, `1.5 kB`, `98.7 MB`.
pub fn size(bytes: u64) -> String {
    // bytesize: a small crate without dependencies that rounds and names units as people
    // expect, where a hand-written loop over 1000s tends to print `1000.0 kB`.
    bytesize::ByteSize(bytes).display().si().to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(super::size(0), "0 B");
        assert_eq!(super::size(512), "512 B");
        assert_eq!(super::size(1_500), "1.5 kB");
        assert_eq!(super::size(98_678_938), "98.7 MB");
        assert_eq!(super::size(u64::MAX), "18.4 EB");
    }
}
