//! How well each surrogate ranks architectures it has not seen: Kendall's tau between
//! its predictions and the NAS-Bench-201 table's seed-mean accuracy on 1000 held-out
//! cells, after fitting on 50, 100 and 150 others (each target one random seed's
//! accuracy, as a search sees it), averaged over 3 draws of the training cells. The MLP
//! ensemble on the path encoding must reach a tau of 0.5 after 100 points. The table and
//! the space are `nas_predict::testing`'s.
use nas_predict::testing::nb201;
use nas_predict::{
    kendall_tau, spearman, Encoding, Gbt, GbtConfig, Gp, MlpConfig, MlpEnsemble, OneHot,
    PathEncoding, Surrogate,
};
use nas_strategies::{decisions, Choice, Rng};

const HELD_OUT: usize = 1000;
const SIZES: [usize; 3] = [50, 100, 150];
const DRAWS: u64 = 3;
/// The bar the MLP ensemble's tau after 100 points must pass (measured: 0.60).
const MLP_TAU_AT_100: f64 = 0.5;

/// Every architecture of the space, as decision vectors.
fn all(space: &[Choice]) -> Vec<Vec<usize>> {
    let sizes = decisions::sizes(space);
    let total: usize = sizes.iter().product();
    (0..total)
        .map(|mut k| {
            sizes
                .iter()
                .map(|&s| {
                    let o = k % s;
                    k /= s;
                    o
                })
                .collect()
        })
        .collect()
}

#[test]
fn surrogates_rank_held_out_nas_bench_201_cells() {
    let (table, space) = nb201();
    let onehot = OneHot::new(&space);
    let path = PathEncoding::new(&space).unwrap();
    let encodings: [(&str, &dyn Encoding); 2] = [("one-hot", &onehot), ("path", &path)];
    let mut archs = all(&space);
    assert_eq!(archs.len(), 15625);
    let mut rng = Rng::new(2024);
    rng.shuffle(&mut archs);
    let (held, pool) = archs.split_at(HELD_OUT);
    let truth: Vec<f64> = held
        .iter()
        .map(|d| table.row(&decisions::to_arch(&space, d)).unwrap().mean)
        .collect();
    // (surrogate, encoding) -> tau and rho summed over draws, per size.
    let names = ["MLP ensemble", "GP (RBF)", "boosted trees"];
    let mut tau = vec![vec![vec![0.0; SIZES.len()]; 2]; names.len()];
    let mut rho = tau.clone();
    for draw in 0..DRAWS {
        let mut rng = Rng::new(draw);
        let mut train: Vec<Vec<usize>> = pool.to_vec();
        rng.shuffle(&mut train);
        train.truncate(*SIZES.last().unwrap());
        let y: Vec<f64> = train
            .iter()
            .map(|d| {
                let seeds = &table.row(&decisions::to_arch(&space, d)).unwrap().seeds;
                seeds[rng.below(seeds.len())]
            })
            .collect();
        for (ei, (_, enc)) in encodings.iter().enumerate() {
            let x = enc.encode_all(&train);
            let xh = enc.encode_all(held);
            for (si, &n) in SIZES.iter().enumerate() {
                let mut models: Vec<Box<dyn Surrogate>> = vec![
                    Box::new(MlpEnsemble::new(MlpConfig::default(), draw).unwrap()),
                    Box::new(Gp::new()),
                    Box::new(
                        Gbt::new(GbtConfig {
                            seed: draw,
                            ..GbtConfig::default()
                        })
                        .unwrap(),
                    ),
                ];
                for (mi, m) in models.iter_mut().enumerate() {
                    m.fit(&x[..n], &y[..n]).unwrap();
                    let pred: Vec<f64> = m.predict(&xh).iter().map(|p| p.mean).collect();
                    tau[mi][ei][si] += kendall_tau(&pred, &truth) / DRAWS as f64;
                    rho[mi][ei][si] += spearman(&pred, &truth) / DRAWS as f64;
                }
            }
        }
    }
    eprintln!("Kendall tau (Spearman rho) on {HELD_OUT} held-out cells, mean of {DRAWS} draws");
    eprintln!(
        "{:<14} {:<8} {:>14} {:>14} {:>14}",
        "surrogate", "encoding", 50, 100, 150
    );
    for (mi, name) in names.iter().enumerate() {
        for (ei, (enc, _)) in encodings.iter().enumerate() {
            let cells: Vec<String> = (0..SIZES.len())
                .map(|si| format!("{:.3} ({:.3})", tau[mi][ei][si], rho[mi][ei][si]))
                .collect();
            eprintln!(
                "{name:<14} {enc:<8} {:>14} {:>14} {:>14}",
                cells[0], cells[1], cells[2]
            );
        }
    }
    let mlp_path_100 = tau[0][1][1];
    assert!(
        mlp_path_100 > MLP_TAU_AT_100,
        "MLP ensemble (path encoding) tau after 100 points: {mlp_path_100:.3}"
    );
    // More data helps every surrogate rank better.
    for (mi, name) in names.iter().enumerate() {
        for (ei, (enc, _)) in encodings.iter().enumerate() {
            assert!(
                tau[mi][ei][2] > tau[mi][ei][0],
                "{name} ({enc}): tau {:.3} at 150 points, {:.3} at 50",
                tau[mi][ei][2],
                tau[mi][ei][0]
            );
        }
    }
}
