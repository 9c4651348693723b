//! Whether a stored session is still alive: the one place that checks the
//! idle and absolute deadlines. The layer never trusts only the store's TTL
//! or the cookie's `Max-Age`: every lookup passes through here.

use crate::{Deadline, Metadata};

/// `Ok` while the session is alive at `now`; otherwise the deadline it passed.
pub(crate) fn check(meta: &Metadata, now: u64) -> Result<(), Deadline> {
    if now >= meta.absolute_deadline {
        Err(Deadline::Absolute)
    } else if now >= meta.expires_at {
        Err(Deadline::Idle)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_are_exclusive_and_absolute_wins() {
        let m = Metadata::new(0, 10, 100);
        assert_eq!(check(&m, 9), Ok(()));
        assert_eq!(check(&m, 10), Err(Deadline::Idle));
        let mut m = Metadata::new(0, 10, 100);
        m.expires_at = 200;
        assert_eq!(check(&m, 100), Err(Deadline::Absolute));
    }
}
