//! Times the depthwise convolution's three kernels separately on the shapes of the DARTS
//! supernet the benchmarks step (batch 32, C16, 5 cells): the stride-1 3x3 and 5x5
//! kernels of the normal cells, their dilated forms, and the stride-2 kernels of the
//! reduction cells. A profiling aid for kernel work; the best of 5 rounds of 10 calls.
mod common;
use nas_kernels::cpu::conv::*;
fn main() {
    // (channels, plane side, kernel, stride, dilation)
    let shapes = [
        (16, 32, 3, 1, 1),
        (16, 32, 5, 1, 1),
        (16, 32, 3, 1, 2),
        (32, 32, 3, 2, 1),
        (32, 32, 5, 2, 2),
        (32, 16, 3, 1, 1),
        (64, 16, 3, 2, 1),
        (64, 8, 5, 1, 1),
    ];
    let n = 32;
    let mut total = [0.0f64; 3];
    for (c, hw, k, s, d) in shapes {
        let pad = d * (k - 1) / 2;
        let p = Conv2d {
            sh: s,
            sw: s,
            ph: pad,
            pw: pad,
            dh: d,
            dw: d,
            groups: c,
            ..Conv2d::same(n, c, hw, hw, c, k)
        };
        let x: Vec<f32> = (0..n * c * hw * hw).map(|i| (i % 7) as f32 * 0.1).collect();
        let w = vec![0.1f32; p.weight_len()];
        let mut y = vec![0.0; p.out_len()];
        let mut gx = vec![0.0; x.len()];
        let mut gw = vec![0.0; w.len()];
        let a = common::best_ms(&mut || conv2d_forward(&p, &x, &w, None, &mut y));
        let b = common::best_ms(&mut || conv2d_backward_input(&p, &y, &w, &mut gx));
        let e = common::best_ms(&mut || conv2d_backward_weight(&p, &x, &y, &mut gw, None));
        total[0] += a;
        total[1] += b;
        total[2] += e;
        println!("C{c} {hw}x{hw} k{k} s{s} d{d}: fwd {a:.3} ms  bwd_in {b:.3} ms  bwd_w {e:.3} ms");
    }
    println!(
        "sum: fwd {:.3} ms  bwd_in {:.3} ms  bwd_w {:.3} ms",
        total[0], total[1], total[2]
    );
}
