//! Reused `f32` buffers. A training step asks the kernels for the same buffer sizes again and
//! again (every minibatch has the same shape); handing freed buffers back out avoids the page
//! faults and zeroing of fresh allocations, which otherwise cost as much as the arithmetic.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// Buffers kept per size; more are freed.
const KEEP_PER_SIZE: usize = 32;

static FREE: Mutex<Option<HashMap<usize, Vec<Vec<f32>>>>> = Mutex::new(None);

/// A buffer of `len` zeros, reused if one of that size was handed back.
pub(crate) fn zeros(len: usize) -> Vec<f32> {
    match reused(len) {
        Some(mut v) => {
            v.fill(0.0);
            v
        }
        None => vec![0.0; len],
    }
}

/// A buffer of `len` floats whose values are unspecified (a reused buffer keeps what it held):
/// for buffers the caller overwrites completely, where zeroing would be wasted work.
pub(crate) fn scratch(len: usize) -> Vec<f32> {
    reused(len).unwrap_or_else(|| vec![0.0; len])
}

/// A handed-back buffer of `len` floats, if there is one.
fn reused(len: usize) -> Option<Vec<f32>> {
    FREE.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_mut()
        .and_then(|free| free.get_mut(&len).and_then(Vec::pop))
}

/// Hands a buffer back for reuse.
pub(crate) fn recycle(v: Vec<f32>) {
    if v.is_empty() {
        return;
    }
    let mut guard = FREE.lock().unwrap_or_else(PoisonError::into_inner);
    let list = guard
        .get_or_insert_with(HashMap::new)
        .entry(v.len())
        .or_default();
    if list.len() < KEEP_PER_SIZE {
        list.push(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recycled_buffer_comes_back_zeroed() {
        let len = 12_345;
        let mut v = zeros(len);
        v.fill(3.0);
        recycle(v);
        let again = zeros(len);
        assert_eq!(again.len(), len);
        assert!(again.iter().all(|x| *x == 0.0));
    }
}
