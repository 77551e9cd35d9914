//! Pareto optimality over objectives that are all minimised (DPP-Net's model selection):
//! picking `k` points front by front (the SDK's fronts, peeled one at a time).

use nas_strategies::pareto::dominates;

/// `k` indices of `points` (fewer when there are fewer points): whole fronts in order,
/// and from the first front that does not fit whole, its members with the lowest first
/// objective (ties by index). A NaN counts as +inf, the worst value of its objective
/// (a surrogate's prediction can come out NaN, and a NaN matches no comparison).
///
/// The fronts are those of `nas_strategies::pareto::fronts`, but only as many as the
/// pick needs, each peeled off what is left: a pool of 20,000 candidates with one or
/// two fronts to take costs the candidates times the front's size, where sorting the
/// whole pool into fronts costs its square (most of a DPP-Net ask, before).
pub fn select(points: &[Vec<f64>], k: usize) -> Vec<usize> {
    let clean: Vec<Vec<f64>>;
    let points = if points.iter().flatten().any(|x| x.is_nan()) {
        clean = points
            .iter()
            .map(|p| {
                p.iter()
                    .map(|&x| if x.is_nan() { f64::INFINITY } else { x })
                    .collect()
            })
            .collect();
        &clean
    } else {
        points
    };
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
///
/// Equal points share one fate, so the set is kept as groups of equal points and each
/// point is checked against one member of each group: a pool whose predictions all tie
/// (before any result, or under an unreachable limit) costs its size, not its square
/// (before, 2.5 s per selection of 11,000 candidates). The points are visited in
/// lexicographic order, in which a point can only be dominated by one before it, so
/// the set rarely holds a point it later drops.
fn peel(points: &[Vec<f64>], among: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let lex = |a: &usize, b: &usize| {
        let (p, q) = (&points[*a], &points[*b]);
        p.iter()
            .zip(q)
            .map(|(x, y)| x.total_cmp(y))
            .find(|o| o.is_ne())
            .unwrap_or(p.len().cmp(&q.len()))
    };
    let mut order = among.to_vec();
    order.sort_by(|a, b| lex(a, b).then(a.cmp(b)));
    // Each group: equal points, the first of which stands for them all.
    let mut groups: Vec<Vec<usize>> = vec![];
    let mut last: Option<(usize, bool)> = None;
    for &i in &order {
        let same = last.is_some_and(|(j, _)| lex(&j, &i).is_eq());
        let inside = match last {
            Some((_, inside)) if same => inside,
            _ => !groups.iter().any(|g| dominates(&points[g[0]], &points[i])),
        };
        last = Some((i, inside));
        if !inside {
            continue;
        }
        match groups.last_mut() {
            Some(g) if same => g.push(i),
            _ => {
                groups.retain(|g| !dominates(&points[i], &points[g[0]]));
                groups.push(vec![i]);
            }
        }
    }
    let mut front: Vec<usize> = groups.into_iter().flatten().collect();
    front.sort_unstable();
    let rest = among
        .iter()
        .copied()
        .filter(|i| front.binary_search(i).is_err())
        .collect();
    (front, rest)
}
