//! Rank correlations between predictions and the truth: Kendall's tau (tau-b, which
//! corrects for ties) and Spearman's rho (Pearson's correlation of average ranks).

/// Kendall's tau-b of two equally long samples: concordant minus discordant pairs over
/// the geometric mean of the pairs not tied in each. 0 when either sample is constant
/// or there are fewer than two points. O(n^2): meant for a few thousand points.
pub fn kendall_tau(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(
        a.len(),
        b.len(),
        "kendall_tau of samples of different sizes"
    );
    let n = a.len();
    let (mut score, mut untied_a, mut untied_b) = (0i64, 0i64, 0i64);
    for i in 0..n {
        for j in i + 1..n {
            let da = sign(a[i] - a[j]);
            let db = sign(b[i] - b[j]);
            score += da * db;
            untied_a += da.abs();
            untied_b += db.abs();
        }
    }
    if untied_a == 0 || untied_b == 0 {
        return 0.0;
    }
    score as f64 / ((untied_a as f64) * (untied_b as f64)).sqrt()
}

fn sign(x: f64) -> i64 {
    if x > 0.0 {
        1
    } else if x < 0.0 {
        -1
    } else {
        0
    }
}

/// The rank of each value (1 = smallest), ties sharing the average of their ranks.
pub fn ranks(xs: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..xs.len()).collect();
    order.sort_by(|&i, &j| xs[i].total_cmp(&xs[j]));
    let mut r = vec![0.0; xs.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && xs[order[end]] == xs[order[start]] {
            end += 1;
        }
        // Ranks start+1 ..= end, averaged.
        let avg = (start + 1 + end) as f64 / 2.0;
        for &k in &order[start..end] {
            r[k] = avg;
        }
        start = end;
    }
    r
}

/// Spearman's rho: the Pearson correlation of the samples' average ranks; 0 when either
/// is constant.
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "spearman of samples of different sizes");
    pearson(&ranks(a), &ranks(b))
}

/// Pearson's correlation; 0 when either sample is constant.
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    if a.len() < 2 {
        return 0.0;
    }
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut c, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        c += (x - ma) * (y - mb);
        va += (x - ma).powi(2);
        vb += (y - mb).powi(2);
    }
    if va == 0.0 || vb == 0.0 {
        0.0
    } else {
        c / (va * vb).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kendall_counts_pairs() {
        assert_eq!(kendall_tau(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]), 1.0);
        assert_eq!(kendall_tau(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), -1.0);
        // Pairs (0,1) +, (0,2) +, (0,3) +, (1,2) -, (1,3) +, (2,3) +: (5 - 1) / 6.
        let t = kendall_tau(&[1.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 2.0, 4.0]);
        assert!((t - 4.0 / 6.0).abs() < 1e-12, "{t}");
        // tau-b with a tie in b: pairs (0,1) tie, (0,2) +, (1,2) +: 2 / sqrt(3 * 2).
        let t = kendall_tau(&[1.0, 2.0, 3.0], &[1.0, 1.0, 2.0]);
        assert!((t - 2.0 / 6f64.sqrt()).abs() < 1e-12, "{t}");
        assert_eq!(kendall_tau(&[1.0, 2.0], &[5.0, 5.0]), 0.0);
    }

    #[test]
    fn spearman_uses_average_ranks() {
        assert_eq!(ranks(&[10.0, 30.0, 20.0, 20.0]), vec![1.0, 4.0, 2.5, 2.5]);
        let r = spearman(&[1.0, 2.0, 3.0, 4.0, 5.0], &[2.0, 1.0, 4.0, 3.0, 5.0]);
        // 1 - 6 * sum d^2 / (n (n^2 - 1)) = 1 - 6 * 4 / 120 without ties.
        assert!((r - 0.8).abs() < 1e-12, "{r}");
        // Monotone but not linear: rho 1, Pearson below it.
        let (a, b) = ([1.0, 2.0, 3.0, 4.0], [1.0, 10.0, 100.0, 1000.0]);
        assert!((spearman(&a, &b) - 1.0).abs() < 1e-12);
        assert!(pearson(&a, &b) < 0.9);
    }
}
