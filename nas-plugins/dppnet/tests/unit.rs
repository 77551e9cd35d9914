//! The unit tests of `nas_strategy_dppnet`, kept out of the library so that `cargo test` builds
//! the plugin once (a test harness inside the library would compile it twice).

mod costs {
    use nas_strategies::testing::layer_space;
    use nas_strategies::Metrics;
    use nas_strategy_dppnet::costs::*;

    /// An exactly additive cost (a base plus a cost per candidate, wherever it is used) is
    /// recovered, and an option never seen on one choice is costed by its candidate's
    /// cost seen on the others.
    #[test]
    fn additive_costs_are_recovered_and_shared_across_choices() {
        let space = layer_space(4, 3);
        let f = Features::new(&space);
        let per = [1.0, 5.0, 20.0];
        let cost = |d: &[usize]| 2.0 + d.iter().map(|&o| per[o]).sum::<f64>();
        // Choice 0 never takes candidate 2 in the data.
        let mut rows = vec![];
        for a in 0..2 {
            for b in 0..3 {
                for c in 0..3 {
                    rows.push(vec![a, b, c, (a + b + c) % 3]);
                }
            }
        }
        let data: Vec<(&[usize], f64)> = rows.iter().map(|d| (&d[..], cost(d))).collect();
        let m = CostModel::fit(&f, &data).unwrap();
        assert!(m.rmse < 0.05, "rmse {}", m.rmse);
        let unseen = [2, 0, 1, 2];
        let got = m.predict(&f, &unseen);
        assert!(
            (got - cost(&unseen)).abs() < 0.5,
            "{got} vs {}",
            cost(&unseen)
        );
        assert!(CostModel::fit(&f, &data[..1]).is_none());
    }

    #[test]
    fn memory_counts_weights_and_a_batch_of_activations() {
        let mut m = Metrics {
            params: Some(1024.0 * 1024.0),
            latency_ms: Some(3.0),
            ..Default::default()
        };
        assert_eq!(
            costs_of(&m, 8),
            [Some(3.0), Some(1048576.0), None, Some(4.0)]
        );
        m.extra
            .insert("activations".into(), (256.0 * 1024.0).into());
        assert_eq!(costs_of(&m, 8)[3], Some(4.0 + 8.0));
    }
}

mod pareto {
    use nas_strategy_dppnet::pareto::*;

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

    /// A prediction that came out NaN (a surrogate fed an overflowing feature) is the
    /// worst value of its objective: the pick is the pick with it replaced by +inf,
    /// whatever its sign (before, a NaN matched no comparison, and `-acc` of a NaN sorted
    /// first, so the peel's order, which rests on dominance following that order, was
    /// wrong for it).
    #[test]
    fn a_nan_prediction_is_the_worst_value() {
        use nas_strategies::Rng;
        let mut rng = Rng::new(11);
        for case in 0..80 {
            let n = 2 + rng.below(40);
            let mut points: Vec<Vec<f64>> = (0..n)
                .map(|_| (0..2 + case % 3).map(|_| rng.below(5) as f64).collect())
                .collect();
            for _ in 0..1 + rng.below(4) {
                let (i, j) = (rng.below(n), rng.below(points[0].len()));
                points[i][j] = if rng.below(2) == 0 {
                    f64::NAN
                } else {
                    -f64::NAN
                };
            }
            let worst: Vec<Vec<f64>> = points
                .iter()
                .map(|p| {
                    p.iter()
                        .map(|x| if x.is_nan() { f64::INFINITY } else { *x })
                        .collect()
                })
                .collect();
            for k in 0..=n {
                assert_eq!(
                    select(&points, k),
                    select(&worst, k),
                    "case {case}, k {k}: {points:?}"
                );
            }
        }
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

mod tells {
    use nas_strategies::testing::{layer_space, setup};
    use nas_strategies::{json, Metrics, Strategy};
    use nas_strategy_dppnet::Dppnet;

    /// A NaN accuracy was kept, saved as `null` and read back as 0, so a resumed search
    /// fitted another surrogate than the uninterrupted one; it is refused now. A failed
    /// trial is still skipped.
    #[test]
    fn a_non_finite_accuracy_is_refused_and_a_failed_trial_skipped() {
        let mut s = Dppnet::new(&setup(layer_space(3, 3), json!({}), 1, 20)).unwrap();
        let a = s.ask().unwrap().unwrap();
        let nan = Metrics {
            accuracy: f64::NAN,
            ..Default::default()
        };
        let e = s.tell(&a, &nan).err().unwrap();
        assert!(e.contains("not finite"), "{e}");
        s.tell(&a, &Metrics::failed("out of memory")).unwrap();
        let saved = s.save().unwrap();
        assert!(
            saved["results"].as_array().is_some_and(|r| r.is_empty()),
            "{saved}"
        );
    }
}
