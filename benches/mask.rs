//! Masking throughput (`rtwire::proto::mask`) in bytes/s, next to
//! `copy_from_slice` of the same buffer (a memcpy: the ceiling for any pass
//! that reads and writes every byte once) and the byte-wise reference.

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rtwire::proto::mask::{apply_mask, apply_mask_reference};

const SIZES: [usize; 4] = [16, 1 << 10, 64 << 10, 1 << 20];
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn mask(c: &mut Criterion) {
    let mut group = c.benchmark_group("mask");
    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        let source: Vec<u8> = (0..size).map(|i| (i * 31 + 7) as u8).collect();
        let mut buf = source.clone();
        // Masking twice restores the buffer, so it can be masked in place
        // iteration after iteration with nothing to reset.
        group.bench_function(BenchmarkId::new("apply_mask", size), |b| {
            b.iter(|| apply_mask(black_box(&mut buf), KEY, 0))
        });
        // Offset 1: a payload unmasked in pieces, the key rotated.
        group.bench_function(BenchmarkId::new("apply_mask_offset1", size), |b| {
            b.iter(|| apply_mask(black_box(&mut buf), KEY, 1))
        });
        group.bench_function(BenchmarkId::new("reference", size), |b| {
            b.iter(|| apply_mask_reference(black_box(&mut buf), KEY, 0))
        });
        group.bench_function(BenchmarkId::new("copy_from_slice", size), |b| {
            b.iter(|| black_box(&mut buf).copy_from_slice(black_box(&source)))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = mask
}
criterion_main!(benches);
