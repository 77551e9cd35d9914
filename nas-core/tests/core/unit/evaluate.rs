//! The unit tests of `nas_core::evaluate` (`nas-core/src/evaluate.rs`).

use nas_core::evaluate::*;
use nas_core::space::builtin::nb201;
use std::path::Path;

fn table() -> Nb201Table {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/nasbench201/nb201_cifar10.csv");
    Nb201Table::load(&p).unwrap()
}

#[test]
fn queries_are_single_seeds_and_the_final_answer_is_the_mean() {
    let mut t = table();
    t.count_macs = true;
    let best = t
        .rows
        .iter()
        .max_by(|a, b| a.1.mean.partial_cmp(&b.1.mean).unwrap())
        .unwrap();
    let arch = nb201::arch_from_key(best.0).unwrap();
    let mut seen = std::collections::HashSet::new();
    for s in 0..50 {
        let m = t.evaluate(&arch, s).unwrap();
        assert!(best
            .1
            .seeds
            .iter()
            .any(|v| (v / 100.0 - m.accuracy).abs() < 1e-12));
        seen.insert((m.accuracy * 1e6) as i64);
        assert!((m.params.unwrap() - best.1.params_mb * 1e6).abs() < 1.0);
    }
    assert!(seen.len() > 1, "queries should differ by seed");
    assert!((t.final_accuracy(&arch).unwrap() - best.1.mean / 100.0).abs() < 1e-12);
    assert!((t.optimum() - 91.6067).abs() < 1e-3);
    // Multiply-adds grow with the convolutions in the cell.
    let none = t.macs(&nb201::arch_from_key("000000").unwrap()).unwrap();
    let c1 = t.macs(&nb201::arch_from_key("222222").unwrap()).unwrap();
    let c3 = t.macs(&nb201::arch_from_key("333333").unwrap()).unwrap();
    assert!(none < c1 && c1 < c3, "{none} {c1} {c3}");
    let acts = |k: &str| {
        t.cost(&nb201::arch_from_key(k).unwrap())
            .unwrap()
            .activations
    };
    // `none` everywhere makes the cells' output zeros (one op per cell), a 1x1
    // convolution makes ReLU, conv and batch-norm outputs on each edge, a 3x3 the same
    // sizes; each query reports them.
    assert!(acts("000000") < acts("222222"));
    assert_eq!(acts("222222"), acts("333333"));
    let m = t
        .evaluate(&nb201::arch_from_key("222222").unwrap(), 0)
        .unwrap();
    assert_eq!(m.extra["activations"], acts("222222"));
}

#[test]
fn a_bad_table_names_the_line_and_field() {
    let p = std::env::temp_dir().join(format!("nas-bad-table-{}.csv", std::process::id()));
    std::fs::write(
        &p,
        "key,arch_str,val_acc_s777,val_acc_mean,params_mb,latency_s,train_time_s\n\
         000000,x,9.7,9.7,0.07,0.01,700\n\
         000001,x,9.7,oops,0.07,0.01,700\n",
    )
    .unwrap();
    let e = Nb201Table::load(&p).err().unwrap();
    std::fs::remove_file(&p).ok();
    assert!(
        e.contains("line 3") && e.contains("val_acc_mean") && e.contains("oops"),
        "{e}"
    );
}

#[test]
fn a_table_with_non_finite_or_out_of_range_values_is_refused() {
    let header = "key,arch_str,val_acc_s777,val_acc_s888,val_acc_mean,params_mb,latency_s,\
                  train_time_s\n000000,x,9.7,nan,9.7,0.07,0.01,700\n";
    let cases = [
        ("000001,x,9.7,9.7,NaN,0.07,0.01,700", "val_acc_mean"),
        ("000001,x,9.7,9.7,inf,0.07,0.01,700", "val_acc_mean"),
        ("000001,x,9.7,9.7,1e308,0.07,0.01,700", "val_acc_mean"),
        ("000001,x,9.7,9.7,-0.5,0.07,0.01,700", "val_acc_mean"),
        ("000001,x,9.7,9.7,9.7,nan,0.01,700", "params_mb"),
        ("000001,x,9.7,9.7,9.7,-inf,0.01,700", "params_mb"),
        ("000001,x,9.7,9.7,9.7,-1,0.01,700", "params_mb"),
        ("000001,x,9.7,9.7,9.7,0.07,NaN,700", "latency_s"),
        ("000001,x,9.7,9.7,9.7,0.07,infinity,700", "latency_s"),
        ("000001,x,9.7,9.7,9.7,0.07,-0.01,700", "latency_s"),
        ("000001,x,9.7,9.7,9.7,0.07,0.01,inf", "train_time_s"),
        // Past what a journal holds once in parameters (its line would be refused).
        ("000001,x,9.7,9.7,9.7,1e13,0.01,700", "params_mb"),
        ("000001,x,1e308,9.7,9.7,0.07,0.01,700", "val_acc_s777"),
        ("000001,x,9.7,inf,9.7,0.07,0.01,700", "val_acc_s888"),
    ];
    for (i, (row, column)) in cases.iter().enumerate() {
        let p = std::env::temp_dir().join(format!(
            "nas-nonfinite-table-{}-{i}.csv",
            std::process::id()
        ));
        std::fs::write(&p, format!("{header}{row}\n")).unwrap();
        let r = Nb201Table::load(&p);
        std::fs::remove_file(&p).ok();
        let e = r.err().unwrap_or_else(|| panic!("accepted `{row}`"));
        assert!(
            e.contains(&p.display().to_string())
                && e.contains("line 3")
                && e.contains(&format!("`{column}`")),
            "`{row}`: {e}"
        );
    }
}

/// A column named like a seed's but not one (`val_acc_std`) is not drawn as a seed's
/// accuracy (it was: a query could return a standard deviation of about 0.1%).
#[test]
fn only_numbered_val_acc_columns_are_seeds() {
    let p = std::env::temp_dir().join(format!("nas-std-table-{}.csv", std::process::id()));
    std::fs::write(
        &p,
        "key,arch_str,val_acc_s777,val_acc_s888,val_acc_std,val_acc_mean,params_mb,latency_s,\
         train_time_s\n000000,x,90.0,91.0,0.5,90.5,0.07,0.01,700\n",
    )
    .unwrap();
    let t = Nb201Table::load(&p);
    std::fs::remove_file(&p).ok();
    let t = t.unwrap();
    let row = t.rows.values().next().unwrap();
    assert_eq!(row.seeds, vec![90.0, 91.0]);
}

/// A row of logits holding a NaN predicts nothing; with a NaN first logit it predicted
/// class 0, so a diverged network scored about one class's share instead of 0.
#[test]
fn a_nan_logit_predicts_no_class() {
    use nas_core::tensor::Tensor;
    let nan = f32::NAN;
    let logits = Tensor::from_vec(
        vec![nan, nan, nan, 1.0, 2.0, nan, 0.0, 1.0, 2.0, 5.0, 5.0, 0.0],
        &[4, 3],
    );
    // Rows: all NaN (label 0), a NaN after the maximum (label 1), clean (label 2),
    // a tie (label 0, the first maximum).
    assert_eq!(nas_core::train::correct(&logits, &[0, 1, 2, 0]), 2);
}
