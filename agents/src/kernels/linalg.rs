//! Row-major matrix products on `f32` slices, through `ndarray`'s safe interface to
//! `matrixmultiply` (runtime-selected AVX/FMA kernels, single-threaded and deterministic).

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};

/// `c[m×n] = beta·c + op(a) · op(b)` where `op(a)` is `m×k` and `op(b)` is `k×n`; a
/// transposed operand is stored row-major as its transpose (`k×m`, `n×k`).
#[allow(clippy::too_many_arguments)]
fn product(
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    a_transposed: bool,
    b: &[f32],
    b_transposed: bool,
    beta: f32,
    c: &mut [f32],
) {
    let (a, b) = (view(m, k, a, a_transposed), view(k, n, b, b_transposed));
    let mut c = ArrayViewMut2::from_shape((m, n), &mut c[..m * n]).expect("c: m×n");
    general_mat_mul(1.0, &a, &b, beta, &mut c);
}

/// A `rows×cols` view of the front of `data`, stored row-major (or column-major: transposed).
fn view(rows: usize, cols: usize, data: &[f32], transposed: bool) -> ArrayView2<'_, f32> {
    let data = &data[..rows * cols];
    if transposed {
        ArrayView2::from_shape((rows, cols).f(), data)
    } else {
        ArrayView2::from_shape((rows, cols), data)
    }
    .expect("operand size")
}

/// `c[m×n] = beta·c + a[m×k] · b[k×n]` (all row-major).
pub(crate) fn gemm(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], beta: f32, c: &mut [f32]) {
    product((m, k, n), a, false, b, false, beta, c);
}

/// Which operand of [`gemm_t`] is stored transposed.
#[derive(Clone, Copy)]
pub(crate) enum Transposed {
    /// `a` is stored as `k×m`: `c = beta·c + aᵀ · b`.
    A,
    /// `b` is stored as `n×k`: `c = beta·c + a · bᵀ`.
    B,
}

/// [`gemm`] with one operand stored transposed (`which`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_t(
    which: Transposed,
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    b: &[f32],
    beta: f32,
    c: &mut [f32],
) {
    let (ta, tb) = match which {
        Transposed::A => (true, false),
        Transposed::B => (false, true),
    };
    product((m, k, n), a, ta, b, tb, beta, c);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_match_the_definition() {
        let (m, k, n) = (3, 4, 5);
        let a: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.5 - 2.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32).sin()).collect();
        let naive = |i: usize, j: usize| (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum::<f32>();
        let mut c = vec![1.0; m * n];
        gemm(m, k, n, &a, &b, 1.0, &mut c);
        let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        let mut c_nt = vec![0.0; m * n];
        gemm_t(Transposed::B, (m, k, n), &a, &bt, 0.0, &mut c_nt);
        let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
        let mut c_tn = vec![0.0; m * n];
        gemm_t(Transposed::A, (m, k, n), &at, &b, 0.0, &mut c_tn);
        for i in 0..m {
            for j in 0..n {
                let want = naive(i, j);
                assert!((c[i * n + j] - 1.0 - want).abs() < 1e-4);
                assert!((c_nt[i * n + j] - want).abs() < 1e-4);
                assert!((c_tn[i * n + j] - want).abs() < 1e-4);
            }
        }
    }
}
