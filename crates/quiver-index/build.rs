//! Enables the AVX-512 kernels only on compilers where the AVX-512
//! intrinsics and `#[target_feature(enable = "avx512f")]` are stable (1.89+),
//! like `quiver-simd`. Older compilers build the AVX2 and scalar kernels only.

use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=RUSTC");
    println!("cargo::rustc-check-cfg=cfg(quiver_avx512)");
    if std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default() != "x86_64" {
        return;
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let Ok(out) = Command::new(rustc).arg("--version").output() else {
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let minor = text
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.split('.').nth(1))
        .and_then(|m| m.parse::<u32>().ok());
    if minor.is_some_and(|m| m >= 89) {
        println!("cargo::rustc-cfg=quiver_avx512");
    }
}
