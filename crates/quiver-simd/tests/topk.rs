use proptest::prelude::*;
use quiver_simd::TopK;

fn reference(entries: &[(f32, u64)], k: usize, hib: bool) -> Vec<(f32, u64)> {
    let mut v: Vec<(f32, u64)> = entries.iter().copied().filter(|e| !e.0.is_nan()).collect();
    v.sort_by(|a, b| TopK::<u64>::compare(hib, a, b));
    v.truncate(k);
    v
}

#[test]
fn ties_go_to_the_smaller_id() {
    for hib in [true, false] {
        let mut t = TopK::new(3, hib);
        for id in [9u64, 4, 7, 1, 8, 2] {
            t.push(1.0, id);
        }
        assert_eq!(t.into_sorted_vec(), vec![(1.0, 1), (1.0, 2), (1.0, 4)]);
    }
    let mut t = TopK::new(4, true);
    for (s, id) in [
        (0.5, 10u64),
        (0.9, 3),
        (0.5, 2),
        (0.9, 7),
        (0.1, 0),
        (0.5, 1),
    ] {
        t.push(s, id);
    }
    assert_eq!(
        t.into_sorted_vec(),
        vec![(0.9, 3), (0.9, 7), (0.5, 1), (0.5, 2)]
    );
    let mut t = TopK::new(4, false);
    for (s, id) in [
        (0.5, 10u64),
        (0.9, 3),
        (0.5, 2),
        (0.9, 7),
        (0.1, 0),
        (0.5, 1),
    ] {
        t.push(s, id);
    }
    assert_eq!(
        t.into_sorted_vec(),
        vec![(0.1, 0), (0.5, 1), (0.5, 2), (0.5, 10)]
    );
}

#[test]
fn nan_zero_k_and_signed_ids() {
    let mut t = TopK::new(2, true);
    assert!(!t.push(f32::NAN, 1u64));
    assert!(t.push(f32::NEG_INFINITY, 2));
    assert!(t.push(3.0, 3));
    assert!(t.push(4.0, 4));
    assert_eq!(t.worst(), Some((3.0, 3)));
    assert_eq!(t.into_sorted_vec(), vec![(4.0, 4), (3.0, 3)]);

    let mut z = TopK::<u64>::new(0, true);
    assert!(!z.push(1.0, 1));
    assert!(z.into_sorted_vec().is_empty());

    // i64 payloads (primary keys) work too.
    let mut t = TopK::<i64>::new(2, false);
    t.extend([(1.0, 5i64), (1.0, -3), (0.5, 100)]);
    assert_eq!(t.into_sorted_vec(), vec![(0.5, 100), (1.0, -3)]);
}

#[test]
fn pushes_do_not_reallocate() {
    let mut t = TopK::<u32>::new(16, true);
    let cap = t.iter_unsorted().as_slice().as_ptr();
    for i in 0..10_000u32 {
        t.push(((i * 7919) % 1000) as f32, i);
    }
    assert_eq!(t.iter_unsorted().as_slice().as_ptr(), cap);
    assert_eq!(t.len(), 16);
}

proptest! {
    #[test]
    fn matches_sorting_regardless_of_order(
        scores in prop::collection::vec(0u8..6, 0..200),
        k in 0usize..20,
        hib in any::<bool>(),
        seed in any::<u64>(),
    ) {
        // Few distinct scores: lots of ties. Ids are a permutation.
        let n = scores.len() as u64;
        let entries: Vec<(f32, u64)> = scores
            .iter()
            .enumerate()
            .map(|(i, &s)| (s as f32 * 0.5, (i as u64).wrapping_mul(seed | 1) % (n.max(1) * 7) * 1000 + i as u64))
            .collect();
        let want = reference(&entries, k, hib);
        let mut fwd = TopK::new(k, hib);
        fwd.extend(entries.iter().copied());
        let mut rev = TopK::new(k, hib);
        rev.extend(entries.iter().rev().copied());
        prop_assert_eq!(fwd.into_sorted_vec(), want.clone());
        prop_assert_eq!(rev.into_sorted_vec(), want);
    }
}
