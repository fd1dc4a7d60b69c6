//! What a connection really holds, counted by the allocator rather than by
//! the connection's own accounting. One test per binary: the counter is
//! process-wide.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;

/// The system allocator, counting the bytes live at any moment.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` with the caller's arguments;
// the counter only observes sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract for `realloc` is passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const MIB: usize = 1 << 20;

/// Attack 11 of the hostile-client review: a peer streams a large
/// fragmented message. Each fragment is copied into the message being
/// assembled; the input that follows a fragment must not keep the
/// fragment's whole read allocation alive beside that copy.
#[test]
fn a_streamed_fragment_is_held_once_not_twice() {
    let fragment = vec![0xab; 4 * MIB];
    let mut wire = client_frame(false, 0x2, &fragment);
    // The next fragment has begun to arrive: its header and a little data.
    let next = client_frame(false, 0x0, &fragment);
    wire.extend_from_slice(&next[..1024]);
    drop(next);

    let mut conn = server();
    let before = LIVE.load(Ordering::Relaxed);
    conn.receive_data(&wire);
    assert!(events(&mut conn).is_empty(), "the message is not complete");
    assert_eq!(conn.buffered_input(), 4 * MIB + 1024 - 14);
    let held = LIVE.load(Ordering::Relaxed) - before;
    assert!(
        held < 4 * MIB + MIB / 2,
        "a 4 MiB fragment made the connection hold {:.1} MiB",
        held as f64 / MIB as f64
    );
}
