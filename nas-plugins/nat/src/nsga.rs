//! NSGA-II (Deb, Pratap, Agarwal and Meyarivan, 2002) on categorical decision vectors,
//! every objective minimised: fast non-dominated sorting under constrained domination
//! (a solution within the constraints beats one outside them, the smaller violation
//! beats the larger, and among equals Pareto domination decides), crowding distance,
//! binary tournaments by rank then crowding, uniform crossover, mutation that redraws a
//! choice among its other options, duplicate elimination and elitist survival of the
//! merged parents and offspring.

use nas_strategies::pareto::dominates;
use nas_strategies::{pareto, Rng};
use std::collections::HashSet;

/// One solution's objectives (all minimised) and how far it is outside the constraints
/// (0 within them).
#[derive(Clone, Debug, PartialEq)]
pub struct Fitness {
    pub f: Vec<f64>,
    pub violation: f64,
}

impl Fitness {
    pub fn new(f: Vec<f64>, violation: f64) -> Fitness {
        Fitness { f, violation }
    }
}

/// Constrained domination: the smaller violation wins when either is outside the
/// constraints and they differ; otherwise Pareto domination of the objectives.
pub fn constrained_dominates(a: &Fitness, b: &Fitness) -> bool {
    if (a.violation > 0.0 || b.violation > 0.0) && a.violation != b.violation {
        return a.violation < b.violation;
    }
    dominates(&a.f, &b.f)
}

/// The fronts of fast non-dominated sorting under constrained domination: front 0 is
/// dominated by nobody, front `k` only by members of earlier fronts. Indices in each
/// front ascend.
pub fn non_dominated_sort(pop: &[Fitness]) -> Vec<Vec<usize>> {
    pareto::fronts_by(pop.len(), |i, j| constrained_dominates(&pop[i], &pop[j]))
}

/// The crowding distance of each member of `front` (in the front's order; see
/// [`pareto::crowding_distance`]: ties by place, which in a front of
/// [`non_dominated_sort`] is by index).
pub fn crowding_distance(pop: &[Fitness], front: &[usize]) -> Vec<f64> {
    let points: Vec<&[f64]> = front.iter().map(|&i| pop[i].f.as_slice()).collect();
    pareto::crowding_distance(&points)
}

/// The rank and crowding distance of every solution.
pub fn rank_and_crowding(pop: &[Fitness]) -> (Vec<usize>, Vec<f64>) {
    pareto::ranks_and_crowding(&non_dominated_sort(pop), pop.len(), |i| &pop[i].f)
}

/// NSGA-II's environmental selection: whole fronts in order while they fit, then the
/// members of the front that does not fit by crowding distance, largest first (ties by
/// index). Returns the survivors' indices in that order.
pub fn survive(pop: &[Fitness], n: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(n.min(pop.len()));
    for front in non_dominated_sort(pop) {
        if out.len() >= n {
            break;
        }
        if out.len() + front.len() <= n {
            out.extend(&front);
        } else {
            let d = crowding_distance(pop, &front);
            let mut order: Vec<usize> = (0..front.len()).collect();
            order.sort_by(|&a, &b| d[b].total_cmp(&d[a]).then(front[a].cmp(&front[b])));
            out.extend(order[..n - out.len()].iter().map(|&k| front[k]));
        }
    }
    out
}

/// The crowded-comparison operator: whether `i` beats `j` (lower rank, then larger
/// crowding distance); `None` when they tie.
pub fn crowded_better(rank: &[usize], crowd: &[f64], i: usize, j: usize) -> Option<bool> {
    if rank[i] != rank[j] {
        return Some(rank[i] < rank[j]);
    }
    if crowd[i] != crowd[j] {
        return Some(crowd[i] > crowd[j]);
    }
    None
}

/// A binary tournament: two members drawn uniformly (with replacement), the better by
/// the crowded comparison wins, a tie is decided by a coin.
pub fn tournament(rank: &[usize], crowd: &[f64], rng: &mut Rng) -> usize {
    let i = rng.below(rank.len());
    let j = rng.below(rank.len());
    match crowded_better(rank, crowd, i, j) {
        Some(true) => i,
        Some(false) => j,
        None => {
            if rng.bernoulli(0.5) {
                i
            } else {
                j
            }
        }
    }
}

/// Uniform crossover: each choice from either parent with probability 1/2.
pub fn uniform_crossover(a: &[usize], b: &[usize], rng: &mut Rng) -> Vec<usize> {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| if rng.bernoulli(0.5) { x } else { y })
        .collect()
}

/// Each choice, with probability `p`, redrawn uniformly among its other options
/// (choices with one option stay).
pub fn mutate(d: &mut [usize], sizes: &[usize], p: f64, rng: &mut Rng) {
    for (v, &k) in d.iter_mut().zip(sizes) {
        if k > 1 && (rng.uniform() as f64) < p {
            let o = rng.below(k - 1);
            *v = if o >= *v { o + 1 } else { o };
        }
    }
}

/// NSGA-II's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Nsga2 {
    pub population: usize,
    pub generations: usize,
    /// Probability that a child is the uniform crossover of its two parents (else a copy
    /// of the first), before mutation.
    pub crossover_prob: f64,
    /// Probability that mutation redraws each choice.
    pub mutation_prob: f64,
}

/// A solution of the final population.
#[derive(Clone, Debug, PartialEq)]
pub struct Solution {
    pub d: Vec<usize>,
    pub fitness: Fitness,
}

impl Nsga2 {
    /// Runs the search over decision vectors with `sizes[i]` options for choice `i`.
    /// `initial` seeds the population (repeats by `key` dropped; where it holds more
    /// than `population`, survival picks; where it is empty, uniform draws fill it);
    /// `evaluate` scores a batch. Each generation breeds up to `population` children,
    /// none a repeat of a member or of another child (each retried up to 100 times), and
    /// the best `population` of parents and children survive. Returns the final
    /// population in survival order (its first front first).
    pub fn run(
        &self,
        sizes: &[usize],
        initial: Vec<Vec<usize>>,
        rng: &mut Rng,
        key: &dyn Fn(&[usize]) -> String,
        evaluate: &mut dyn FnMut(&[Vec<usize>]) -> Result<Vec<Fitness>, String>,
    ) -> Result<Vec<Solution>, String> {
        let mut seen: HashSet<String> = HashSet::new();
        let mut pop: Vec<Vec<usize>> = vec![];
        for d in initial {
            if seen.insert(key(&d)) {
                pop.push(d);
            }
        }
        if pop.is_empty() {
            let mut tries = 0;
            while pop.len() < self.population && tries < 100 * self.population {
                tries += 1;
                let d: Vec<usize> = sizes.iter().map(|&k| rng.below(k.max(1))).collect();
                if seen.insert(key(&d)) {
                    pop.push(d);
                }
            }
        }
        let mut fit = evaluate(&pop)?;
        if fit.len() != pop.len() {
            return Err(format!(
                "NSGA-II: {} scores for {} solutions",
                fit.len(),
                pop.len()
            ));
        }
        if pop.len() > self.population {
            let keep = survive(&fit, self.population);
            pop = keep.iter().map(|&i| pop[i].clone()).collect();
            fit = keep.iter().map(|&i| fit[i].clone()).collect();
        }
        for _ in 0..self.generations {
            let (rank, crowd) = rank_and_crowding(&fit);
            let mut children: Vec<Vec<usize>> = vec![];
            let mut keys: HashSet<String> = pop.iter().map(|d| key(d)).collect();
            for _ in 0..self.population {
                for _ in 0..100 {
                    let a = &pop[tournament(&rank, &crowd, rng)];
                    let b = &pop[tournament(&rank, &crowd, rng)];
                    let mut child = if (rng.uniform() as f64) < self.crossover_prob {
                        uniform_crossover(a, b, rng)
                    } else {
                        a.clone()
                    };
                    mutate(&mut child, sizes, self.mutation_prob, rng);
                    if keys.insert(key(&child)) {
                        children.push(child);
                        break;
                    }
                }
            }
            if children.is_empty() {
                break; // nothing new can be bred
            }
            let child_fit = evaluate(&children)?;
            if child_fit.len() != children.len() {
                return Err(format!(
                    "NSGA-II: {} scores for {} solutions",
                    child_fit.len(),
                    children.len()
                ));
            }
            pop.extend(children);
            fit.extend(child_fit);
            let keep = survive(&fit, self.population);
            pop = keep.iter().map(|&i| pop[i].clone()).collect();
            fit = keep.iter().map(|&i| fit[i].clone()).collect();
        }
        let order = survive(&fit, pop.len());
        Ok(order
            .into_iter()
            .map(|i| Solution {
                d: pop[i].clone(),
                fitness: fit[i].clone(),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nas_strategies::pareto::ranks;

    fn fit(points: &[(f64, f64)]) -> Vec<Fitness> {
        points
            .iter()
            .map(|&(a, b)| Fitness::new(vec![a, b], 0.0))
            .collect()
    }

    #[test]
    fn fronts_and_ranks_match_a_hand_sort() {
        // P0 (1,5), P1 (2,3), P2 (4,1) dominate each other nowhere; P3 (3,4) is
        // dominated by P1, P5 (2,6) by P0, and P4 (5,5) by P1 and P3.
        let pop = fit(&[(1., 5.), (2., 3.), (4., 1.), (3., 4.), (5., 5.), (2., 6.)]);
        let fronts = non_dominated_sort(&pop);
        assert_eq!(fronts, vec![vec![0, 1, 2], vec![3, 5], vec![4]]);
        assert_eq!(ranks(&fronts, 6), vec![0, 0, 0, 1, 2, 1]);
        assert!(dominates(&[1.0, 1.0], &[1.0, 2.0]));
        assert!(
            !dominates(&[1.0, 2.0], &[1.0, 2.0]),
            "equal is no domination"
        );
        assert!(!dominates(&[0.0, 3.0], &[1.0, 2.0]));
    }

    #[test]
    fn constraint_violations_sort_before_objectives() {
        // Q0 is best on both objectives but outside the constraints; Q1 (violation 0.5)
        // beats Q2 (violation 2) whatever their objectives; Q3 and Q4 are feasible and
        // trade off.
        let pop = vec![
            Fitness::new(vec![0.0, 0.0], 1.0),
            Fitness::new(vec![9.0, 9.0], 0.5),
            Fitness::new(vec![1.0, 1.0], 2.0),
            Fitness::new(vec![5.0, 6.0], 0.0),
            Fitness::new(vec![6.0, 5.0], 0.0),
        ];
        assert!(constrained_dominates(&pop[3], &pop[0]));
        assert!(constrained_dominates(&pop[1], &pop[0]));
        assert!(
            constrained_dominates(&pop[0], &pop[2]) && !constrained_dominates(&pop[2], &pop[0])
        );
        assert!(
            !constrained_dominates(&pop[3], &pop[4]) && !constrained_dominates(&pop[4], &pop[3])
        );
        assert_eq!(
            non_dominated_sort(&pop),
            vec![vec![3, 4], vec![1], vec![0], vec![2]]
        );
    }

    #[test]
    fn crowding_distances_match_hand_computation() {
        // One front Q0 (0,10), Q1 (1,6), Q2 (3,3), Q3 (10,0); both ranges are 10.
        // Q1: (3-0)/10 + (10-3)/10 = 1.0; Q2: (10-1)/10 + (6-0)/10 = 1.5; ends infinite.
        let pop = fit(&[(0., 10.), (1., 6.), (3., 3.), (10., 0.)]);
        let d = crowding_distance(&pop, &[0, 1, 2, 3]);
        assert!(d[0].is_infinite() && d[3].is_infinite());
        assert!((d[1] - 1.0).abs() < 1e-12, "{d:?}");
        assert!((d[2] - 1.5).abs() < 1e-12, "{d:?}");
        // In another order the distances follow their members.
        let d = crowding_distance(&pop, &[2, 3, 1, 0]);
        assert!((d[0] - 1.5).abs() < 1e-12 && (d[2] - 1.0).abs() < 1e-12);
        // Two members, or a flat objective: no finite distance, no division by zero.
        assert!(crowding_distance(&pop, &[1, 2])
            .iter()
            .all(|v| v.is_infinite()));
        let flat = fit(&[(1., 1.), (1., 1.), (1., 1.)]);
        assert_eq!(crowding_distance(&flat, &[0, 1, 2])[1], 0.0);
    }

    #[test]
    fn survival_fills_by_fronts_then_by_crowding() {
        // Front 0: Q0..Q3 as above, plus Q4 (2,9) dominated by Q1, Q5 (11,11) by all.
        let pop = fit(&[
            (0., 10.),
            (1., 6.),
            (3., 3.),
            (10., 0.),
            (2., 9.),
            (11., 11.),
        ]);
        // Three of front 0: the two ends (infinite), then Q2 (1.5) before Q1 (1.0).
        assert_eq!(survive(&pop, 3), vec![0, 3, 2]);
        // Five: all of front 0, then front 1 (Q4).
        assert_eq!(survive(&pop, 5), vec![0, 1, 2, 3, 4]);
        assert_eq!(survive(&pop, 10).len(), 6);
    }

    #[test]
    fn tournaments_prefer_lower_rank_then_wider_crowding() {
        let rank = [0, 1, 0, 0];
        let crowd = [1.0, 9.0, 2.0, 1.0];
        assert_eq!(crowded_better(&rank, &crowd, 0, 1), Some(true));
        assert_eq!(crowded_better(&rank, &crowd, 0, 2), Some(false));
        assert_eq!(crowded_better(&rank, &crowd, 0, 3), None);
        // Over many tournaments the worst member (rank 1) wins only against itself:
        // about 1/16 of them.
        let mut rng = Rng::new(3);
        let mut wins = [0usize; 4];
        for _ in 0..16_000 {
            wins[tournament(&rank, &crowd, &mut rng)] += 1;
        }
        assert!((800..1200).contains(&wins[1]), "{wins:?}");
        // Member 2 (rank 0, widest) wins every draw it is in: 7/16.
        assert!((6500..7500).contains(&wins[2]), "{wins:?}");
    }

    #[test]
    fn mutation_always_changes_a_redrawn_choice_and_crossover_mixes_parents() {
        let mut rng = Rng::new(1);
        let sizes = [3, 1, 4];
        for _ in 0..200 {
            let mut d = vec![2, 0, 1];
            mutate(&mut d, &sizes, 1.0, &mut rng);
            assert_ne!(d[0], 2);
            assert_eq!(d[1], 0, "a choice with one option stays");
            assert_ne!(d[2], 1);
            assert!(d[0] < 3 && d[2] < 4);
        }
        let mut d = vec![2, 0, 1];
        mutate(&mut d, &sizes, 0.0, &mut rng);
        assert_eq!(d, vec![2, 0, 1]);
        let (a, b) = (vec![0; 20], vec![1; 20]);
        let c = uniform_crossover(&a, &b, &mut rng);
        let ones = c.iter().sum::<usize>();
        assert!((3..18).contains(&ones), "{c:?}");
    }

    /// Four choices of three options: option `o` of choice `i` costs `COST[i][o]` and
    /// loses `LOSS[i][o]`; both are minimised.
    const COST: [[f64; 3]; 4] = [[1., 2., 4.], [0., 3., 5.], [2., 3., 7.], [1., 1.5, 6.]];
    const LOSS: [[f64; 3]; 4] = [[5., 3., 0.], [6., 2., 1.], [4., 3., 0.], [3., 2.5, 2.]];

    fn objectives(d: &[usize]) -> Fitness {
        let c = (0..4).map(|i| COST[i][d[i]]).sum();
        let l = (0..4).map(|i| LOSS[i][d[i]]).sum();
        Fitness::new(vec![c, l], 0.0)
    }

    fn all() -> Vec<Vec<usize>> {
        (0..81)
            .map(|r: usize| vec![r % 3, r / 3 % 3, r / 9 % 3, r / 27])
            .collect()
    }

    #[test]
    fn finds_the_exact_pareto_front_of_a_small_problem() {
        // The true front by enumeration of all 81 decision vectors.
        let every = all();
        let fits: Vec<Fitness> = every.iter().map(|d| objectives(d)).collect();
        let mut truth: Vec<Vec<f64>> = non_dominated_sort(&fits)[0]
            .iter()
            .map(|&i| fits[i].f.clone())
            .collect();
        truth.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
        truth.dedup();
        assert!(truth.len() >= 8, "a front worth finding: {truth:?}");
        let key = |d: &[usize]| format!("{d:?}");
        for seed in 0..3 {
            let mut rng = Rng::new(seed);
            let nsga = Nsga2 {
                population: 30,
                generations: 40,
                crossover_prob: 0.9,
                mutation_prob: 0.25,
            };
            let mut evaluations = 0;
            let out = nsga
                .run(&[3, 3, 3, 3], vec![], &mut rng, &key, &mut |b| {
                    evaluations += b.len();
                    Ok(b.iter().map(|d| objectives(d)).collect())
                })
                .unwrap();
            assert_eq!(out.len(), 30);
            let fits: Vec<Fitness> = out.iter().map(|s| s.fitness.clone()).collect();
            let mut found: Vec<Vec<f64>> = non_dominated_sort(&fits)[0]
                .iter()
                .map(|&i| fits[i].f.clone())
                .collect();
            found.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
            found.dedup();
            assert_eq!(found, truth, "seed {seed} after {evaluations} evaluations");
            // No decision vector was scored twice in one population.
            let keys: HashSet<String> = out.iter().map(|s| key(&s.d)).collect();
            assert_eq!(keys.len(), out.len());
        }
    }

    #[test]
    fn an_initial_population_seeds_the_search_and_surplus_is_cut() {
        let every = all();
        let key = |d: &[usize]| format!("{d:?}");
        let nsga = Nsga2 {
            population: 10,
            generations: 0,
            crossover_prob: 0.9,
            mutation_prob: 0.25,
        };
        let mut rng = Rng::new(0);
        let mut seeds = every.clone();
        seeds.push(every[0].clone()); // a repeat is dropped
        let mut first = 0;
        let out = nsga
            .run(&[3, 3, 3, 3], seeds, &mut rng, &key, &mut |b| {
                first = b.len();
                Ok(b.iter().map(|d| objectives(d)).collect())
            })
            .unwrap();
        assert_eq!(first, 81, "every distinct seed scored once");
        // With no generation the survivors of all 81 are the best 10 by rank and
        // crowding: the true front's members come first.
        let fits: Vec<Fitness> = every.iter().map(|d| objectives(d)).collect();
        let expect: Vec<Vec<usize>> = survive(&fits, 10)
            .into_iter()
            .map(|i| every[i].clone())
            .collect();
        let got: HashSet<Vec<usize>> = out.iter().map(|s| s.d.clone()).collect();
        assert_eq!(got, expect.into_iter().collect::<HashSet<_>>());
    }
}
