//! Incremental UTF-8 validation (`rtwire::proto::utf8::Utf8Validator`)
//! against `std::str::from_utf8` on the same bytes, in bytes/s.
//!
//! `validator` feeds the whole buffer at once; `validator_1000B_pieces`
//! feeds it in 1000-byte pieces, which cut multi-byte code points, as
//! reads from a socket do.

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rtwire::proto::utf8::Utf8Validator;

const SIZES: [usize; 3] = [1 << 10, 64 << 10, 1 << 20];

fn utf8(c: &mut Criterion) {
    let mut group = c.benchmark_group("utf8");
    let patterns = [
        (
            "ascii",
            "The quick brown fox jumps over the lazy dog. 0123456789 ",
        ),
        ("mixed", "Hello-µ@ßöäüàá-UTF-8!! κόσμε €𝄞 "),
    ];
    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        for (kind, pattern) in patterns {
            let bytes = common::utf8_sample(size, pattern);
            let param = format!("{kind}/{size}");
            group.bench_with_input(
                BenchmarkId::new("std_from_utf8", &param),
                &bytes,
                |b, bytes| b.iter(|| std::str::from_utf8(black_box(bytes)).is_ok()),
            );
            group.bench_with_input(BenchmarkId::new("validator", &param), &bytes, |b, bytes| {
                let mut v = Utf8Validator::new();
                b.iter(|| v.feed(black_box(bytes)).is_ok() && v.finish().is_ok())
            });
            group.bench_with_input(
                BenchmarkId::new("validator_1000B_pieces", &param),
                &bytes,
                |b, bytes| {
                    let mut v = Utf8Validator::new();
                    b.iter(|| {
                        let ok = black_box(bytes)
                            .chunks(1000)
                            .all(|piece| v.feed(piece).is_ok());
                        ok && v.finish().is_ok()
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = utf8
}
criterion_main!(benches);
