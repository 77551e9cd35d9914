//! Times the three convolution kernels separately (a profiling aid for kernel work; the
//! best of 5 rounds of 10 calls).
mod common;
use nas_kernels::cpu::conv::*;
fn main() {
    // The bench rows (batch 64), then the small cells one-shot searches train (batch 32).
    let shapes = [
        (64, 16, 16, 32, 3),
        (64, 16, 16, 32, 5),
        (64, 64, 64, 16, 3),
        (32, 8, 8, 28, 3),
        (32, 16, 16, 14, 3),
        (32, 32, 32, 7, 3),
    ];
    for (n, cin, cout, hw, k) in shapes {
        let p = Conv2d::same(n, cin, hw, hw, cout, k);
        let x = vec![0.5f32; n * cin * hw * hw];
        let w = vec![0.1f32; p.weight_len()];
        let mut y = vec![0.0; p.out_len()];
        let mut gx = vec![0.0; x.len()];
        let mut gw = vec![0.0; w.len()];
        let mut gb = vec![0.0; cout];
        let a = common::best_ms(&mut || conv2d_forward(&p, &x, &w, None, &mut y));
        let b = common::best_ms(&mut || conv2d_backward_input(&p, &y, &w, &mut gx));
        let c = common::best_ms(&mut || conv2d_backward_weight(&p, &x, &y, &mut gw, Some(&mut gb)));
        let gf = 2.0 * p.macs() as f64 / 1e6;
        println!("b{n} C{cin}->{cout} {hw} k{k}: fwd {a:.2} ms ({:.0} GF/s)  bwd_in {b:.2} ms  bwd_w {c:.2} ms", gf / a);
    }
}
