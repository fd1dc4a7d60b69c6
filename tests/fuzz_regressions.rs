//! Regression tests for crashes found while fuzzing and property-testing.
//!
//! Each test reproduces one bug with the smallest input found. A test for a
//! bug not yet fixed is `#[ignore]`d with the reason, so that `cargo test`
//! stays green; remove the `ignore` together with the fix.

use rtwire::proto::mask::{apply_mask, apply_mask_reference};

/// `apply_mask_reference` computes `key[(offset + i) % 4]`, which overflows
/// (a panic in debug builds) when `offset + i` passes `usize::MAX`, while
/// `apply_mask` takes any offset. Found by `tests/properties.rs` with
/// `offset = usize::MAX` and a 2-byte payload.
#[test]
fn mask_reference_takes_any_offset() {
    for offset in [usize::MAX, usize::MAX - 1, usize::MAX - 2] {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let mut fast = [0u8; 9];
        let mut slow = [0u8; 9];
        apply_mask(&mut fast, key, offset);
        apply_mask_reference(&mut slow, key, offset);
        assert_eq!(fast, slow, "offset {offset}");
    }
}
