//! The 3/REMOTE-LOG decoders (`src/spec/`, `src/transfer/import_spec.rs`): a spec-form page (`as_remote_log`), a
//! `vac.mvds.Message` payload (`decode_payload`), an import record (`refs/imports/*`) and
//! the records of `spec-view/index-v1`.

use prost::Message as _;
use remotelog::spec::{self, fuzz_entry, RemoteLog};
use remotelog::transfer::import_spec;

pub fn run(data: &[u8]) {
    if let Some(rl) = spec::as_remote_log(data) {
        assert!(!rl.pair.is_empty() || !rl.tail.is_empty());
        assert!(rl.tail.is_empty() || rl.tail.len() == 32);
        for p in &rl.pair {
            assert_eq!(p.remote_hash.len(), 32);
            assert_eq!(p.local_hash.len(), 32);
        }
        // What decodes re-encodes to something that decodes the same.
        let again = RemoteLog::decode(rl.encode_to_vec().as_slice()).expect("re-encoded page");
        assert_eq!(again, rl);
    }
    match spec::decode_payload(data) {
        Ok(m) => {
            let again = spec::decode_payload(&spec::payload(&m)).expect("re-encoded payload");
            assert_eq!(again, m, "payload → encode → decode changed it");
        }
        Err(e) => super::assert_one_line("decode_payload", &e),
    }
    if let Some(round_trip) = import_spec::fuzz_entry::import_record(data) {
        assert!(round_trip, "import record → encode → decode changed it");
    }
    let records = fuzz_entry::view_records(data);
    for (i, again) in records {
        let at = i * spec::RECORD_LEN;
        assert_eq!(
            again,
            data[at..at + spec::RECORD_LEN],
            "index record {i} re-encodes differently"
        );
    }
}
