//! The checked-in seeds are what `gen_corpus` writes today, and each one
//! passes its target's checks (as the fuzzers will run it first).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use arbitrary::{Arbitrary, Unstructured};
use rtwire_fuzz::deflate_checks::Input;
use rtwire_fuzz::session::{self, Session};

const TARGETS: [&str; 8] = [
    "frame_decode",
    "http_head",
    "connection",
    "deflate",
    "transport_params",
    "push_form",
    "push_url",
    "push_webhook",
];

fn seeds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds")
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("dir entry").path();
            let name = path
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            (name, fs::read(&path).expect("read seed"))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn seeds_are_up_to_date() {
    let fresh = std::env::temp_dir().join(format!("rtwire-seeds-{}", std::process::id()));
    let status = Command::new(env!("CARGO_BIN_EXE_gen_corpus"))
        .arg(&fresh)
        .status()
        .expect("run gen_corpus");
    assert!(status.success());
    for target in TARGETS {
        let checked_in = files(&seeds_dir().join(target));
        let generated = files(&fresh.join(target));
        assert!(!generated.is_empty());
        assert!(
            checked_in == generated,
            "fuzz/seeds/{target} is stale: run `cargo run --release --bin gen_corpus` in fuzz/"
        );
    }
    fs::remove_dir_all(&fresh).expect("clean up");
}

#[test]
fn seeds_pass_their_checks() {
    let mut total = 0;
    for (_, data) in files(&seeds_dir().join("frame_decode")) {
        rtwire_fuzz::frame_checks::check(&data);
        total += data.len();
    }
    for (_, data) in files(&seeds_dir().join("http_head")) {
        rtwire_fuzz::http_checks::check(&data);
        total += data.len();
    }
    for (name, data) in files(&seeds_dir().join("connection")) {
        let session = Session::arbitrary_take_rest(Unstructured::new(&data))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!session.actions.is_empty(), "{name}");
        session::check(&session);
        total += data.len();
    }
    for (name, data) in files(&seeds_dir().join("deflate")) {
        let input = Input::arbitrary_take_rest(Unstructured::new(&data))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        rtwire_fuzz::deflate_checks::check(input);
        total += data.len();
    }
    for (_, data) in files(&seeds_dir().join("transport_params")) {
        rtwire_fuzz::transport_checks::check(&data);
        total += data.len();
    }
    for (_, data) in files(&seeds_dir().join("push_form")) {
        rtwire_fuzz::push_checks::check_form(&data);
        total += data.len();
    }
    for (_, data) in files(&seeds_dir().join("push_url")) {
        rtwire_fuzz::push_checks::check_url(&data);
        total += data.len();
    }
    for (_, data) in files(&seeds_dir().join("push_webhook")) {
        rtwire_fuzz::push_checks::check_webhook(&data);
        total += data.len();
    }
    assert!(total < 200 * 1024, "seeds must stay small: {total} bytes");
}
