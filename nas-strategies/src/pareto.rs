//! Pareto optimality for multi-objective strategies, every objective minimised (negate
//! an objective to maximise it): dominance, non-dominated sorting into fronts, and the
//! crowding distance of NSGA-II (Deb et al., 2002). Evolution, DPP-Net and NAT share it.

/// Whether `a` dominates `b`: no worse in every objective and better in at least one.
/// Equal points do not dominate each other.
pub fn dominates(a: &[f64], b: &[f64]) -> bool {
    let mut better = false;
    for (x, y) in a.iter().zip(b) {
        if x > y {
            return false;
        }
        better |= x < y;
    }
    better
}

/// Fast non-dominated sorting of `n` solutions under the relation `dominates(i, j)`
/// (Pareto dominance, or a constrained one): front 0 holds the solutions nobody
/// dominates, front `k` those dominated only by members of earlier fronts. Every
/// solution is in exactly one front, and the indices of each front ascend.
pub fn fronts_by(n: usize, dominates: impl Fn(usize, usize) -> bool) -> Vec<Vec<usize>> {
    let mut dominated_by = vec![0usize; n];
    let mut dominating: Vec<Vec<usize>> = vec![vec![]; n];
    for i in 0..n {
        for j in i + 1..n {
            if dominates(i, j) {
                dominating[i].push(j);
                dominated_by[j] += 1;
            } else if dominates(j, i) {
                dominating[j].push(i);
                dominated_by[i] += 1;
            }
        }
    }
    let mut fronts = vec![];
    let mut current: Vec<usize> = (0..n).filter(|&i| dominated_by[i] == 0).collect();
    while !current.is_empty() {
        let mut next = vec![];
        for &i in &current {
            for &j in &dominating[i] {
                dominated_by[j] -= 1;
                if dominated_by[j] == 0 {
                    next.push(j);
                }
            }
        }
        next.sort_unstable();
        fronts.push(current);
        current = next;
    }
    fronts
}

/// The non-dominated fronts of `points` under Pareto dominance (see [`fronts_by`]): the
/// first is the Pareto set, the second the Pareto set of the rest, and so on.
pub fn fronts(points: &[Vec<f64>]) -> Vec<Vec<usize>> {
    fronts_by(points.len(), |i, j| dominates(&points[i], &points[j]))
}

/// The front number of each of `n` solutions.
pub fn ranks(fronts: &[Vec<usize>], n: usize) -> Vec<usize> {
    let mut r = vec![usize::MAX; n];
    for (k, front) in fronts.iter().enumerate() {
        for &i in front {
            r[i] = k;
        }
    }
    r
}

/// The crowding distance of each point of one front (in the order given): per
/// objective, the points sorted by it (ties by their place in `front`), the two ends
/// get infinity and every other point adds the gap between its neighbours over the
/// objective's range in the front (nothing where the range is 0). A front of one or two
/// points is all ends.
pub fn crowding_distance(front: &[&[f64]]) -> Vec<f64> {
    let n = front.len();
    if n <= 2 {
        return vec![f64::INFINITY; n];
    }
    let mut d = vec![0.0; n];
    for k in 0..front[0].len() {
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| front[a][k].total_cmp(&front[b][k]).then(a.cmp(&b)));
        let (lo, hi) = (front[order[0]][k], front[order[n - 1]][k]);
        d[order[0]] = f64::INFINITY;
        d[order[n - 1]] = f64::INFINITY;
        if hi > lo {
            for w in 1..n - 1 {
                d[order[w]] += (front[order[w + 1]][k] - front[order[w - 1]][k]) / (hi - lo);
            }
        }
    }
    d
}

/// The front number and the crowding distance within its front of each of `n`
/// solutions, `point(i)` being solution `i`'s objectives.
pub fn ranks_and_crowding<'a>(
    fronts: &[Vec<usize>],
    n: usize,
    point: impl Fn(usize) -> &'a [f64],
) -> (Vec<usize>, Vec<f64>) {
    let mut crowd = vec![0.0; n];
    for front in fronts {
        let members: Vec<&[f64]> = front.iter().map(|&i| point(i)).collect();
        for (&i, d) in front.iter().zip(crowding_distance(&members)) {
            crowd[i] = d;
        }
    }
    (ranks(fronts, n), crowd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nas_types::Rng;

    #[test]
    fn dominance_needs_one_strictly_better_objective() {
        assert!(dominates(&[1.0, 2.0], &[1.0, 3.0]));
        assert!(!dominates(&[1.0, 2.0], &[1.0, 2.0]));
        assert!(!dominates(&[0.0, 3.0], &[1.0, 2.0]));
        assert!(!dominates(&[1.0, 3.0], &[1.0, 2.0]));
    }

    /// Seven (error, latency) points worked out by hand: 0 (0.10, 9), 1 (0.20, 4),
    /// 2 (0.15, 9), 3 (0.30, 2), 4 (0.20, 5), 5 (0.40, 1), 6 (0.10, 9). 0 and 6 tie, 2 is
    /// dominated by 0 and 6, 4 by 1; nothing else is dominated.
    #[test]
    fn fronts_ranks_and_crowding_match_the_hand_made_example() {
        let p: Vec<Vec<f64>> = [
            (0.10, 9.0),
            (0.20, 4.0),
            (0.15, 9.0),
            (0.30, 2.0),
            (0.20, 5.0),
            (0.40, 1.0),
            (0.10, 9.0),
        ]
        .iter()
        .map(|&(a, b)| vec![a, b])
        .collect();
        let f = fronts(&p);
        assert_eq!(f, vec![vec![0, 1, 3, 5, 6], vec![2, 4]]);
        assert_eq!(ranks(&f, 7), vec![0, 0, 1, 0, 1, 0, 0]);
        // Front 0 in order 0, 1, 3, 5, 6. By error (range 0.30) the ends are 0 and 5 (0
        // before 6 by place); by latency (range 8) 5 and 6. So 0, 5 and 6 are infinite,
        // 1 gets (0.30 - 0.10) / 0.30 + (9 - 2) / 8 and 3 (0.40 - 0.20) / 0.30 + (4 - 1) / 8.
        let pts: Vec<&[f64]> = f[0].iter().map(|&i| p[i].as_slice()).collect();
        let c = crowding_distance(&pts);
        assert!(c[0].is_infinite() && c[3].is_infinite() && c[4].is_infinite());
        assert!((c[1] - (0.2 / 0.3 + 7.0 / 8.0)).abs() < 1e-9, "{c:?}");
        assert!((c[2] - (0.2 / 0.3 + 3.0 / 8.0)).abs() < 1e-9, "{c:?}");
        assert_eq!(crowding_distance(&pts[..2]), vec![f64::INFINITY; 2]);
        // Together: each solution's front and its distance within it (front 1, {2, 4},
        // has two members, both ends).
        let (r, cd) = ranks_and_crowding(&f, 7, |i| p[i].as_slice());
        assert_eq!(r, ranks(&f, 7));
        for (k, &i) in f[0].iter().enumerate() {
            assert_eq!(cd[i].to_bits(), c[k].to_bits());
        }
        assert!(cd[2].is_infinite() && cd[4].is_infinite());
    }

    /// On random points (with ties), each front is exactly what the definition says:
    /// nobody in it or a later front dominates a member, and every member of front
    /// `k > 0` is dominated by a member of front `k - 1`.
    #[test]
    fn fronts_hold_the_definition_on_random_points() {
        let mut rng = Rng::new(7);
        for _ in 0..50 {
            let n = 1 + rng.below(40);
            let p: Vec<Vec<f64>> = (0..n)
                .map(|_| (0..3).map(|_| rng.below(5) as f64).collect())
                .collect();
            let f = fronts(&p);
            assert_eq!(f.iter().map(Vec::len).sum::<usize>(), n);
            let r = ranks(&f, n);
            for i in 0..n {
                for j in 0..n {
                    if dominates(&p[j], &p[i]) {
                        assert!(r[j] < r[i], "{p:?}");
                    }
                }
                if r[i] > 0 {
                    assert!(f[r[i] - 1].iter().any(|&j| dominates(&p[j], &p[i])));
                }
            }
            assert!(f.iter().all(|fr| fr.windows(2).all(|w| w[0] < w[1])));
        }
    }
}
