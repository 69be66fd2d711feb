//! Statistics over seeds: what the results folders report.
//!
//! - Continuous outcomes (reward, return): [`mean_ci95`] (mean and 95 % Student-t interval)
//!   and, for a claim "A differs from B", [`welch`] (Welch's unequal-variance t-test with
//!   Cohen's d and Hedges' g).
//! - Binary outcomes (a seed solved the task or not): [`wilson`] (the Wilson score interval
//!   of k successes out of n) and [`fisher_exact`] (Fisher's exact test on the 2×2 table of
//!   two arms' successes and failures). A Student-t interval on 0/1 data leaves [0, 1] and
//!   is not used for them.

use statrs::distribution::{ContinuousCDF, Normal, StudentsT};
use statrs::function::factorial::ln_binomial;

/// Mean, standard deviation and 95 % Student-t interval of the mean of a sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// Number of values.
    pub n: usize,
    /// Sample mean.
    pub mean: f64,
    /// Sample standard deviation (n − 1 denominator); 0 for a single value.
    pub std: f64,
    /// Lower end of the 95 % Student-t confidence interval of the mean (= mean when n = 1).
    pub ci_low: f64,
    /// Upper end of the 95 % Student-t confidence interval of the mean (= mean when n = 1).
    pub ci_high: f64,
}

impl Summary {
    /// Half the width of the confidence interval.
    pub fn half_width(&self) -> f64 {
        (self.ci_high - self.ci_low) / 2.0
    }
}

/// Mean and two-sided 95 % Student-t confidence interval of the mean:
/// `mean ± t(0.975, n − 1) · s / √n`. Returns `None` for an empty slice; with one value the
/// interval collapses to the value.
pub fn mean_ci95(values: &[f64]) -> Option<Summary> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return Some(Summary {
            n,
            mean,
            std: 0.0,
            ci_low: mean,
            ci_high: mean,
        });
    }
    let std = sample_variance(values, mean).sqrt();
    let half = t_quantile(0.975, (n - 1) as f64) * std / (n as f64).sqrt();
    Some(Summary {
        n,
        mean,
        std,
        ci_low: mean - half,
        ci_high: mean + half,
    })
}

/// Quantile of Student's t distribution: the `t` with `P(T <= t) = p`, for `0 < p < 1`
/// and `df > 0`.
pub fn t_quantile(p: f64, df: f64) -> f64 {
    assert!(p > 0.0 && p < 1.0 && df > 0.0, "t_quantile({p}, {df})");
    StudentsT::new(0.0, 1.0, df)
        .expect("df > 0 is a valid Student-t")
        .inverse_cdf(p)
}

fn sample_variance(values: &[f64], mean: f64) -> f64 {
    values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (values.len() - 1) as f64
}

/// Welch's two-sample t-test of `mean(a) = mean(b)` (variances not assumed equal), with the
/// effect size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Welch {
    /// `mean(a) − mean(b)`.
    pub mean_diff: f64,
    /// The t statistic, `mean_diff / √(s_a²/n_a + s_b²/n_b)`.
    pub t: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub df: f64,
    /// Two-sided p-value, `2 · P(T_df ≥ |t|)`.
    pub p_two_sided: f64,
    /// Cohen's d: `mean_diff` over the pooled standard deviation
    /// `√(((n_a − 1) s_a² + (n_b − 1) s_b²) / (n_a + n_b − 2))`.
    pub cohen_d: f64,
    /// Hedges' g: Cohen's d times the small-sample correction `1 − 3 / (4 (n_a + n_b) − 9)`.
    pub hedges_g: f64,
}

/// Welch's t-test of `a` against `b`. `None` when a sample has fewer than two values or both
/// samples have zero variance (the statistic is undefined then).
pub fn welch(a: &[f64], b: &[f64]) -> Option<Welch> {
    let (na, nb) = (a.len(), b.len());
    if na < 2 || nb < 2 {
        return None;
    }
    let (ma, mb) = (
        a.iter().sum::<f64>() / na as f64,
        b.iter().sum::<f64>() / nb as f64,
    );
    let (va, vb) = (sample_variance(a, ma), sample_variance(b, mb));
    let (sa, sb) = (va / na as f64, vb / nb as f64);
    let se2 = sa + sb;
    if se2 <= 0.0 {
        return None;
    }
    let mean_diff = ma - mb;
    let t = mean_diff / se2.sqrt();
    let df = se2 * se2 / (sa * sa / (na - 1) as f64 + sb * sb / (nb - 1) as f64);
    let dist = StudentsT::new(0.0, 1.0, df).expect("df > 0 is a valid Student-t");
    let p_two_sided = (2.0 * dist.sf(t.abs())).min(1.0);
    let pooled = (((na - 1) as f64 * va + (nb - 1) as f64 * vb) / (na + nb - 2) as f64).sqrt();
    let cohen_d = mean_diff / pooled;
    let hedges_g = cohen_d * (1.0 - 3.0 / (4.0 * (na + nb) as f64 - 9.0));
    Some(Welch {
        mean_diff,
        t,
        df,
        p_two_sided,
        cohen_d,
        hedges_g,
    })
}

/// A proportion `k / n` with its 95 % Wilson score interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Proportion {
    /// Successes.
    pub k: u64,
    /// Trials.
    pub n: u64,
    /// `k / n`.
    pub rate: f64,
    /// Lower end of the 95 % Wilson interval.
    pub low: f64,
    /// Upper end of the 95 % Wilson interval.
    pub high: f64,
}

/// The 95 % Wilson score interval of `k` successes in `n` trials (`None` if `n = 0` or
/// `k > n`): `(k + z²/2) / (n + z²) ± z / (n + z²) · √(k (n − k) / n + z²/4)` with
/// `z = Φ⁻¹(0.975)`. Unlike the normal ("Wald") interval it stays inside [0, 1] and is not
/// empty at k = 0 or k = n; it is what R's `prop.test(k, n, correct = FALSE)` reports.
pub fn wilson(k: u64, n: u64) -> Option<Proportion> {
    if n == 0 || k > n {
        return None;
    }
    let z = Normal::standard().inverse_cdf(0.975);
    let (kf, nf, z2) = (k as f64, n as f64, z * z);
    let center = (kf + z2 / 2.0) / (nf + z2);
    let half = z / (nf + z2) * (kf * (nf - kf) / nf + z2 / 4.0).sqrt();
    Some(Proportion {
        k,
        n,
        rate: kf / nf,
        low: (center - half).max(0.0),
        high: (center + half).min(1.0),
    })
}

/// Fisher's exact test on the 2×2 table
///
/// ```text
///            success   failure
///   arm A       a         b
///   arm B       c         d
/// ```
///
/// conditional on its margins (the count in the top-left cell is hypergeometric under the
/// null hypothesis of equal success probabilities). Two-sided p-value as in R's
/// `fisher.test`: the total probability of the tables with the same margins that are no more
/// likely than the observed one (with a relative tolerance of 1e-7 for ties).
pub fn fisher_exact(a: u64, b: u64, c: u64, d: u64) -> f64 {
    let (row1, col1, n) = (a + b, a + c, a + b + c + d);
    if n == 0 {
        return 1.0;
    }
    let lo = col1.saturating_sub(c + d);
    let hi = row1.min(col1);
    // ln P(top-left = x) = ln C(row1, x) + ln C(n − row1, col1 − x) − ln C(n, col1)
    let ln_p =
        |x: u64| ln_binomial(row1, x) + ln_binomial(n - row1, col1 - x) - ln_binomial(n, col1);
    let observed = ln_p(a);
    let p: f64 = (lo..=hi)
        .map(ln_p)
        .filter(|&l| l <= observed + 1e-7_f64.ln_1p())
        .map(f64::exp)
        .sum();
    p.min(1.0)
}

/// Fisher's exact test of two arms' success counts: `k_a` of `n_a` against `k_b` of `n_b`.
pub fn fisher_exact_counts(k_a: u64, n_a: u64, k_b: u64, n_b: u64) -> f64 {
    assert!(k_a <= n_a && k_b <= n_b, "successes exceed trials");
    fisher_exact(k_a, n_a - k_a, k_b, n_b - k_b)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Whether `a` and `b` differ by at most `tol`.
    pub(crate) fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn t_quantiles_match_tables() {
        // Two-sided 95 % critical values from standard tables.
        let table = [
            (1.0, 12.706),
            (2.0, 4.303),
            (3.0, 3.182),
            (4.0, 2.776),
            (5.0, 2.571),
            (9.0, 2.262),
            (29.0, 2.045),
            (1000.0, 1.962),
        ];
        for (df, t) in table {
            let q = t_quantile(0.975, df);
            assert!(close(q, t, 1e-3), "df={df}: {q} vs {t}");
        }
        // df = 1 is Cauchy: quantile = tan(pi (p - 1/2)), exactly.
        let q = t_quantile(0.9, 1.0);
        assert!(close(q, (std::f64::consts::PI * 0.4).tan(), 1e-8), "{q}");
        // df = 2 has a closed form: t = (2p-1) sqrt(2 / (4 p (1-p))).
        let p: f64 = 0.975;
        let exact = (2.0 * p - 1.0) * (2.0 / (4.0 * p * (1.0 - p))).sqrt();
        assert!(close(t_quantile(p, 2.0), exact, 1e-8));
        assert!(close(t_quantile(0.025, 4.0), -2.776, 1e-3));
    }

    #[test]
    fn ci_matches_hand_computation() {
        // values 1, 2, 3, 4: mean 2.5, s = sqrt(5/3), t(0.975, 3) = 3.182446.
        let s = mean_ci95(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        let half = 3.182_446 * (5.0f64 / 3.0).sqrt() / 2.0;
        assert_eq!(s.n, 4);
        assert!(close(s.mean, 2.5, 1e-12));
        assert!(close(s.std, (5.0f64 / 3.0).sqrt(), 1e-12));
        assert!(close(s.ci_low, 2.5 - half, 1e-5), "{s:?}");
        assert!(close(s.ci_high, 2.5 + half, 1e-5), "{s:?}");
        // two values 0 and 2: mean 1, s = sqrt(2), half = 12.706 * sqrt(2) / sqrt(2).
        let s = mean_ci95(&[0.0, 2.0]).unwrap();
        assert!(close(s.half_width(), 12.706_2, 1e-3), "{s:?}");
        let one = mean_ci95(&[3.0]).unwrap();
        assert_eq!((one.ci_low, one.ci_high, one.std), (3.0, 3.0, 0.0));
        assert!(mean_ci95(&[]).is_none());
    }

    /// R's `sleep` data set (Cushny & Peebles): extra hours of sleep under two drugs.
    const SLEEP_1: [f64; 10] = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0];
    const SLEEP_2: [f64; 10] = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4];

    #[test]
    fn welch_matches_r_sleep_example() {
        // R: t.test(extra ~ group, data = sleep)  (Welch is R's default, var.equal = FALSE)
        //   t = -1.8608, df = 17.776, p-value = 0.07939
        //   mean in group 1 0.75, mean in group 2 2.33
        let w = welch(&SLEEP_1, &SLEEP_2).unwrap();
        assert!(close(w.mean_diff, 0.75 - 2.33, 1e-12), "{w:?}");
        assert!(close(w.t, -1.8608, 1e-4), "{w:?}");
        assert!(close(w.df, 17.776, 1e-3), "{w:?}");
        assert!(close(w.p_two_sided, 0.07939, 1e-5), "{w:?}");
        // Cohen's d by hand: s1² = 3.200556, s2² = 4.009000 (R: var(...)), pooled
        // sd = sqrt((9 s1² + 9 s2²) / 18) = 1.898625, d = -1.58 / 1.898625 = -0.832181;
        // Hedges' g = d (1 - 3 / (4·20 - 9)) = -0.797019.
        assert!(close(w.cohen_d, -0.832181, 1e-5), "{w:?}");
        assert!(close(w.hedges_g, -0.797019, 1e-5), "{w:?}");
        // Swapping the samples flips the sign only.
        let s = welch(&SLEEP_2, &SLEEP_1).unwrap();
        assert!(close(s.t, -w.t, 1e-12) && close(s.p_two_sided, w.p_two_sided, 1e-12));
    }

    #[test]
    fn welch_unequal_sizes_and_degenerate_cases() {
        // a = 1..5 (mean 3, s² = 2.5), b = 2, 4, 6 (mean 4, s² = 4): by hand,
        // se² = 2.5/5 + 4/3 = 1.833333, t = -1/√1.833333 = -0.738549,
        // df = 1.833333² / (0.5²/4 + 1.333333²/2) = 3.361111 / 0.951389 = 3.532847.
        let w = welch(&[1.0, 2.0, 3.0, 4.0, 5.0], &[2.0, 4.0, 6.0]).unwrap();
        assert!(close(w.t, -0.738549, 1e-6), "{w:?}");
        assert!(close(w.df, 3.532847, 1e-5), "{w:?}");
        assert!(w.p_two_sided > 0.4 && w.p_two_sided < 0.6, "{w:?}");
        assert!(welch(&[1.0], &[1.0, 2.0]).is_none());
        assert!(welch(&[1.0, 1.0], &[2.0, 2.0]).is_none());
    }

    #[test]
    fn wilson_matches_r_prop_test() {
        // R: prop.test(k, n, correct = FALSE)$conf.int (the Wilson score interval), and
        // by hand from the formula with z = 1.959964:
        //   k = 0,  n = 20: [0, 0.1611252]      (upper = z² / (n + z²))
        //   k = 10, n = 20: [0.2992980, 0.7007020]
        //   k = 20, n = 20: [0.8388748, 1]
        //   k = 3,  n = 5:  [0.2307243, 0.8823792]
        //   k = 1,  n = 10: [0.0178762, 0.4041500]
        let cases = [
            (0, 20, 0.0, 0.1611252),
            (10, 20, 0.2992980, 0.7007020),
            (20, 20, 0.8388748, 1.0),
            (3, 5, 0.2307243, 0.8823792),
            (1, 10, 0.0178762, 0.4041500),
        ];
        for (k, n, lo, hi) in cases {
            let p = wilson(k, n).unwrap();
            assert!(close(p.low, lo, 1e-6), "{k}/{n}: {p:?}");
            assert!(close(p.high, hi, 1e-6), "{k}/{n}: {p:?}");
            assert!(close(p.rate, k as f64 / n as f64, 1e-12));
        }
        assert!(wilson(0, 0).is_none() && wilson(3, 2).is_none());
    }

    #[test]
    fn fisher_matches_r_fisher_test() {
        // R: fisher.test(matrix(c(3, 1, 1, 3), nrow = 2))  (Fisher's tea-tasting lady)
        //   p-value = 0.4857 = 34/70
        assert!(close(fisher_exact(3, 1, 1, 3), 34.0 / 70.0, 1e-12));
        // A perfect 10 vs 0 split of 20: only the two extreme tables count,
        // p = 2 / C(20, 10) = 2 / 184756 = 1.082509e-05.
        assert!(close(fisher_exact(10, 0, 0, 10), 2.0 / 184_756.0, 1e-15));
        // No difference at all: p = 1.
        assert!(close(fisher_exact(5, 5, 5, 5), 1.0, 1e-12));
        // 20 of 20 against 0 of 20 seeds: p = 2 / C(40, 20) = 1.450889e-11.
        let p = fisher_exact_counts(20, 20, 0, 20);
        assert!(close(p / 1.450_889e-11, 1.0, 1e-5), "{p}");
        // 8 of 20 against 2 of 20 (margins 20 / 20 and 10 / 30), by hand: the tables no
        // more likely than the observed one have top-left x in {0, 1, 2} ∪ {8, …, 10};
        // Σ C(20, x) C(20, 10 − x) / C(40, 10) over them = 0.0648332.
        let p = fisher_exact_counts(8, 20, 2, 20);
        assert!(close(p, 0.064_833_2, 1e-6), "{p}");
        // The test is symmetric in the arms and in success / failure.
        assert!(close(p, fisher_exact_counts(2, 20, 8, 20), 1e-12));
        assert!(close(p, fisher_exact_counts(12, 20, 18, 20), 1e-12));
        assert!(close(fisher_exact(0, 0, 0, 0), 1.0, 0.0));
    }
}
