//! Pareto optimality over objectives that are all minimised (DPP-Net's model selection):
//! picking `k` points front by front (the SDK's fronts, peeled one at a time).

use nas_strategies::pareto::dominates;

/// `k` indices of `points` (fewer when there are fewer points): whole fronts in order,
/// and from the first front that does not fit whole, its members with the lowest first
/// objective (ties by index).
///
/// The fronts are those of `nas_strategies::pareto::fronts`, but only as many as the
/// pick needs, each peeled off what is left: a pool of 20,000 candidates with one or
/// two fronts to take costs the candidates times the front's size, where sorting the
/// whole pool into fronts costs its square (most of a DPP-Net ask, before).
pub fn select(points: &[Vec<f64>], k: usize) -> Vec<usize> {
    let mut out = vec![];
    let mut rest: Vec<usize> = (0..points.len()).collect();
    while out.len() < k && !rest.is_empty() {
        let (mut front, others) = peel(points, &rest);
        rest = others;
        if out.len() + front.len() <= k {
            out.extend(front);
            continue;
        }
        front.sort_by(|&a, &b| points[a][0].total_cmp(&points[b][0]).then(a.cmp(&b)));
        front.truncate(k - out.len());
        out.extend(front);
    }
    out
}

/// The Pareto set of the points `among` (ascending indices, as is the set), and the
/// rest. A point left out was dominated by a member of the set as it stood, and so
/// (dominance being transitive) by a member of the final one.
fn peel(points: &[Vec<f64>], among: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let mut front: Vec<usize> = vec![];
    for &i in among {
        if front.iter().any(|&j| dominates(&points[j], &points[i])) {
            continue;
        }
        front.retain(|&j| !dominates(&points[i], &points[j]));
        front.push(i);
    }
    front.sort_unstable();
    let rest = among
        .iter()
        .copied()
        .filter(|i| front.binary_search(i).is_err())
        .collect();
    (front, rest)
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

    /// The pick from fronts peeled one at a time is the pick from the SDK's full sort,
    /// on random point sets with ties (values from a few levels) and every `k`.
    #[test]
    fn peeled_fronts_pick_what_the_full_sort_picks() {
        use nas_strategies::pareto::fronts;
        use nas_strategies::Rng;
        let reference = |points: &[Vec<f64>], k: usize| -> Vec<usize> {
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
        };
        let mut rng = Rng::new(3);
        for case in 0..60 {
            let n = 1 + rng.below(80);
            let m = 2 + case % 4;
            let points: Vec<Vec<f64>> = (0..n)
                .map(|_| (0..m).map(|_| rng.below(6) as f64).collect())
                .collect();
            for k in 0..=n + 1 {
                assert_eq!(
                    select(&points, k),
                    reference(&points, k),
                    "case {case}, k {k}: {points:?}"
                );
            }
        }
    }
}
