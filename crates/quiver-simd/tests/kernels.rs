//! Every SIMD level against the scalar reference.

use proptest::prelude::*;
use quiver_simd::{scalar, Kernels, Level};

/// Small deterministic generator (xorshift64*), uniform in [-scale, scale).
struct Rng(u64);
impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn f32(&mut self, scale: f32) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
    }
    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.f32(scale)).collect()
    }
}

fn levels() -> Vec<&'static Kernels> {
    Level::ALL
        .into_iter()
        .filter_map(Kernels::for_level)
        .collect()
}

/// `sum |x_i y_i|` in f64: the scale the rounding error is relative to.
fn abs_dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 * *y as f64).abs())
        .sum()
}

fn close(got: f32, want: f32, scale: f64, what: &str, level: Level, n: usize) {
    let tol = 1e-4 * scale + 1e-30;
    assert!(
        ((got as f64) - (want as f64)).abs() <= tol,
        "{what} {level:?} n={n}: got {got}, scalar {want}, tol {tol}"
    );
}

fn check_all(a: &[f32], b: &[f32]) {
    let n = a.len();
    let diff: Vec<f32> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    for k in levels() {
        let l = k.level();
        close(k.dot(a, b), scalar::dot(a, b), abs_dot(a, b), "dot", l, n);
        close(
            k.l2_sq(a, b),
            scalar::l2_sq(a, b),
            abs_dot(&diff, &diff),
            "l2_sq",
            l,
            n,
        );
        close(
            k.norm_sq(a),
            scalar::norm_sq(a),
            abs_dot(a, a),
            "norm_sq",
            l,
            n,
        );
        let (c, want) = (k.cosine(a, b), scalar::cosine(a, b));
        if scalar::norm_sq(a) == 0.0 || scalar::norm_sq(b) == 0.0 {
            assert_eq!(c, 0.0, "cosine of a zero vector, {l:?}");
        } else {
            assert!(
                (c - want).abs() <= 1e-4,
                "cosine {l:?} n={n}: {c} vs {want}"
            );
        }
    }
}

#[test]
fn every_length_up_to_1100() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for n in 0..=1100 {
        let scale = [1.0, 1e-3, 1e3][n % 3];
        let a = rng.vec(n, scale);
        let b = rng.vec(n, scale);
        check_all(&a, &b);
        // Offsets into a buffer: unaligned starts.
        if n > 3 {
            check_all(&a[3..], &b[1..n - 2]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn simd_matches_scalar(
        (a, b) in (0usize..=1100).prop_flat_map(|n| (
            prop::collection::vec(-100.0f32..100.0, n),
            prop::collection::vec(-100.0f32..100.0, n),
        ))
    ) {
        check_all(&a, &b);
    }

    #[test]
    fn binary_matches_bit_loop(
        (a, b) in (0usize..=300).prop_flat_map(|n| (
            prop::collection::vec(any::<u8>(), n),
            prop::collection::vec(any::<u8>(), n),
        ))
    ) {
        let mut ham = 0u32;
        let (mut inter, mut union) = (0u32, 0u32);
        for (x, y) in a.iter().zip(&b) {
            for bit in 0..8 {
                let (p, q) = (x >> bit & 1, y >> bit & 1);
                ham += (p != q) as u32;
                inter += (p & q) as u32;
                union += (p | q) as u32;
            }
        }
        let jac = if union == 0 { 0.0 } else { 1.0 - inter as f32 / union as f32 };
        for k in levels() {
            prop_assert_eq!(k.hamming(&a, &b), ham);
            prop_assert!((k.jaccard(&a, &b) - jac).abs() <= 1e-6);
        }
        prop_assert_eq!(quiver_simd::hamming(&a, &b), ham);
    }
}

#[test]
fn cosine_with_zero_vectors() {
    let z = [0.0f32; 37];
    let x: Vec<f32> = (0..37).map(|i| i as f32 - 3.0).collect();
    for k in levels() {
        assert_eq!(k.cosine(&z, &x), 0.0);
        assert_eq!(k.cosine(&x, &z), 0.0);
        assert_eq!(k.cosine(&z, &z), 0.0);
        assert!((k.cosine(&x, &x) - 1.0).abs() < 1e-6);
    }
    assert_eq!(quiver_simd::cosine(&[], &[]), 0.0);
}

#[test]
#[should_panic(expected = "length mismatch")]
fn length_mismatch_panics() {
    quiver_simd::dot(&[1.0, 2.0], &[1.0]);
}

#[test]
fn half_conversions() {
    let src: Vec<f32> = (0..1003).map(|i| (i as f32 - 500.0) * 0.37).collect();
    let mut h = vec![0u16; src.len()];
    let mut back = vec![0f32; src.len()];
    quiver_simd::f32_to_f16(&src, &mut h);
    quiver_simd::f16_to_f32(&h, &mut back);
    for (i, (&x, &y)) in src.iter().zip(&back).enumerate() {
        assert_eq!(h[i], half::f16::from_f32(x).to_bits());
        assert_eq!(y, half::f16::from_bits(h[i]).to_f32());
        assert!((x - y).abs() <= x.abs() * 1e-3 + 1e-4);
    }
    quiver_simd::f32_to_bf16(&src, &mut h);
    quiver_simd::bf16_to_f32(&h, &mut back);
    for (i, (&x, &y)) in src.iter().zip(&back).enumerate() {
        assert_eq!(h[i], half::bf16::from_f32(x).to_bits());
        assert_eq!(y.to_bits(), (h[i] as u32) << 16);
        assert!((x - y).abs() <= x.abs() * 1e-2);
    }
}

#[test]
fn levels_and_env_names() {
    assert!(Level::Scalar.is_supported());
    assert_eq!(Level::parse("AVX512"), Some(Level::Avx512));
    assert_eq!(Level::parse("scalar"), Some(Level::Scalar));
    assert_eq!(Level::parse("sse9"), None);
    let active = quiver_simd::active_level();
    assert!(Level::parse(active).unwrap().is_supported());
    if std::env::var(quiver_simd::ENV_VAR).is_err() {
        // No override: the best supported level.
        let best = Level::ALL.into_iter().find(|l| l.is_supported()).unwrap();
        assert_eq!(active, best.name());
    }
}

/// Helper for `env_var_forces_scalar`: prints the active level.
#[test]
fn probe_active_level() {
    println!("ACTIVE_LEVEL={}", quiver_simd::active_level());
}

#[test]
fn env_var_forces_scalar() {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "probe_active_level",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(quiver_simd::ENV_VAR, "scalar")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ACTIVE_LEVEL=scalar"), "child said: {text}");
}
