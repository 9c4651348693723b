//! A forked child never draws the IDs its parent would draw next: the
//! per-thread pool of OS randomness is refilled after `fork()`.
#![cfg(unix)]
#![allow(unsafe_code)]

use std::io::{Read, Write};

use sessionware::SessionId;

#[test]
fn a_forked_child_refills_the_pool_instead_of_repeating_the_parent() {
    // Fill this thread's pool: the parent's next IDs come from it.
    let _ = SessionId::generate().unwrap();
    let (mut parent_end, mut child_end) = std::os::unix::net::UnixStream::pair().unwrap();
    // SAFETY: the child only draws an ID from a thread-local pool, writes it
    // to a socket made before the fork and leaves with `_exit` (no
    // destructors, no atexit handlers, no other thread's state touched).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let id = SessionId::generate().map(|id| id.storage_key().to_hex()).unwrap_or_default();
        let _ = child_end.write_all(id.as_bytes());
        // SAFETY: ends the child at once, as documented above.
        unsafe { libc::_exit(0) };
    }
    drop(child_end);
    let parent_next = SessionId::generate().unwrap().storage_key().to_hex();
    let mut child_id = String::new();
    parent_end.read_to_string(&mut child_id).unwrap();
    let mut status = 0;
    // SAFETY: waits for the child this test forked.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(!child_id.is_empty(), "the child drew an ID");
    assert_ne!(child_id, parent_next, "the child repeated the parent's next ID");
}
