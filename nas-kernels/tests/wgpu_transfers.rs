#![cfg(feature = "wgpu")]
//! The transfer counter against what a device call must move: its operands and
//! parameters up, its result down, nothing more (one test per process, so no other test
//! moves bytes meanwhile).

mod common;
use common::{gpu, random};
use nas_kernels::accel::Accel;
use nas_kernels::cpu::pool::Pool2d;
use nas_kernels::transfer::snapshot;

#[test]
fn device_calls_move_their_operands_and_result_only() {
    let Some(g) = gpu() else { return };
    // Kernel arguments (a small uniform per launch) are not counted, as for CUDA.
    let p = nas_kernels::cpu::conv::Conv2d::same(2, 3, 8, 8, 4, 3);
    let (x, w) = (random(2 * 3 * 8 * 8, 1), random(p.weight_len(), 2));
    let before = snapshot();
    let y = g.conv2d(&p, &x, &w).unwrap();
    let moved = snapshot() - before;
    assert_eq!(moved.up_bytes, 4 * (x.len() + w.len()) as u64);
    assert_eq!(
        moved.down_bytes,
        4 * y.len() as u64,
        "only the output comes back"
    );
    assert_eq!((moved.up_calls, moved.down_calls), (2, 1));

    // Max pooling also brings back its argmax.
    let pool = Pool2d {
        n: 2,
        c: 3,
        h: 8,
        w: 8,
        kh: 2,
        kw: 2,
        sh: 2,
        sw: 2,
        ph: 0,
        pw: 0,
    };
    let before = snapshot();
    let (v, arg) = g.max_pool(&pool, &x).unwrap();
    let moved = snapshot() - before;
    assert_eq!(arg.len(), v.len());
    assert_eq!(moved.down_bytes, 8 * v.len() as u64);
    assert_eq!(moved.down_calls, 2);
}
