//! Lists of ids filed under dense keys, flattened into two vectors.

/// The ids filed under each key `0..keys`, flattened: the ids of key `k` are
/// `ids[starts[k]..starts[k + 1]]`, in the order they were filed. Two
/// allocations in all, where a list per key took one each (10,000 path
/// patterns' clause lists at 10,000 rules).
#[derive(Debug, Default)]
pub(crate) struct Postings {
    starts: Vec<u32>,
    ids: Vec<u32>,
}

impl Postings {
    /// Files `(key, id)` pairs under keys `0..keys` (a counting sort, so each
    /// list keeps the order of `filed`). Pairs with a key out of range are
    /// dropped.
    pub(crate) fn new(keys: usize, filed: &[(u32, u32)]) -> Self {
        let mut starts = vec![0u32; keys + 1];
        for &(k, _) in filed {
            if let Some(n) = starts.get_mut(k as usize + 1) {
                *n += 1;
            }
        }
        let mut total = 0;
        for n in &mut starts {
            total += *n;
            *n = total;
        }
        // `next[k]`: where the next id of key `k` goes.
        let mut next = starts.clone();
        let mut ids = vec![0u32; total as usize];
        for &(k, id) in filed {
            if let Some(at) = next.get_mut(k as usize) {
                if let Some(slot) = ids.get_mut(*at as usize) {
                    *slot = id;
                }
                *at += 1;
            }
        }
        Self { starts, ids }
    }

    /// The ids filed under key `k` (none for an unknown key).
    pub(crate) fn get(&self, k: u32) -> &[u32] {
        let range = self.starts.get(k as usize).zip(self.starts.get(k as usize + 1));
        range
            .and_then(|(&a, &b)| self.ids.get(a as usize..b as usize))
            .unwrap_or_default()
    }

    /// Heap bytes held.
    pub(crate) fn heap_size(&self) -> usize {
        (self.starts.capacity() + self.ids.capacity()) * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn lists_keep_the_filing_order() {
        let p = Postings::new(4, &[(2, 7), (0, 1), (2, 3), (9, 5), (0, 4)]);
        assert_eq!(p.get(0), [1, 4]);
        assert_eq!(p.get(1), [] as [u32; 0]);
        assert_eq!(p.get(2), [7, 3]);
        assert_eq!(p.get(3), [] as [u32; 0]);
        assert_eq!(p.get(4), [] as [u32; 0]);
        assert_eq!(p.get(9), [] as [u32; 0]);
    }
}
