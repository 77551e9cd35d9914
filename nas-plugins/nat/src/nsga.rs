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
