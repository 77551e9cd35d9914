//! Pareto optimality over objectives that are all minimised (DPP-Net's model selection):
//! picking `k` points front by front (the fronts are the SDK's).

use nas_strategies::pareto::fronts;

/// `k` indices of `points` (fewer when there are fewer points): whole fronts in order,
/// and from the first front that does not fit whole, its members with the lowest first
/// objective (ties by index).
pub fn select(points: &[Vec<f64>], k: usize) -> Vec<usize> {
    let mut out = vec![];
    for mut front in fronts(points) {
        if out.len() + front.len() <= k {
            out.extend(front);
            continue;
        }
        front.sort_by(|&a, &b| points[a][0].total_cmp(&points[b][0]).then(a.cmp(&b)));
        front.truncate(k - out.len());
        out.extend(front);
        break;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seven candidates as (error, latency ms), worked out by hand:
    /// 0 (0.10, 9), 1 (0.20, 4), 2 (0.15, 9), 3 (0.30, 2), 4 (0.20, 5), 5 (0.40, 1),
    /// 6 (0.10, 9). 0 and 6 tie (neither dominates the other), 2 is dominated by 0,
    /// 4 by 1. Front 1: {0, 1, 3, 5, 6}; front 2: {2, 4}.
    fn example() -> Vec<Vec<f64>> {
        vec![
            vec![0.10, 9.0],
            vec![0.20, 4.0],
            vec![0.15, 9.0],
            vec![0.30, 2.0],
            vec![0.20, 5.0],
            vec![0.40, 1.0],
            vec![0.10, 9.0],
        ]
    }

    #[test]
    fn select_takes_whole_fronts_then_the_lowest_first_objective() {
        let p = example();
        let mut all = select(&p, 7);
        all.sort_unstable();
        assert_eq!(all, (0..7).collect::<Vec<_>>());
        // Front 1 whole, then of front 2 the lower error: 2 (0.15) before 4 (0.20).
        assert_eq!(select(&p, 6), vec![0, 1, 3, 5, 6, 2]);
        // Front 1 cut to 3: errors 0.10 (0, 6), then 0.20 (1).
        assert_eq!(select(&p, 3), vec![0, 6, 1]);
        assert_eq!(select(&p, 0), Vec::<usize>::new());
        assert_eq!(select(&p, 50).len(), 7);
    }
}
