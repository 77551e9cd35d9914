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
