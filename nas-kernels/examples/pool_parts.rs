//! Times max and average pooling, forward and backward, on the shapes of the DARTS
//! supernet the benchmarks step (batch 32, C16, 5 cells): the 3x3 stride-1 pools of the
//! normal cells and the stride-2 pools of the reduction cells. A profiling aid for
//! kernel work; the best of 5 rounds of 10 calls, one thread unless RAYON_NUM_THREADS
//! says otherwise.
mod common;
use nas_kernels::cpu::pool::*;
fn main() {
    // (channels, input side, stride)
    let shapes = [
        (16, 32, 1),
        (32, 32, 2),
        (32, 16, 1),
        (64, 16, 2),
        (64, 8, 1),
    ];
    let n = 32;
    let mut total = [0.0f64; 4];
    for (c, hw, s) in shapes {
        let p = Pool2d {
            n,
            c,
            h: hw,
            w: hw,
            kh: 3,
            kw: 3,
            sh: s,
            sw: s,
            ph: 1,
            pw: 1,
        };
        let x: Vec<f32> = (0..n * c * hw * hw)
            .map(|i| ((i * 37) % 101) as f32 * 0.01)
            .collect();
        let len = n * c * p.out_h() * p.out_w();
        let mut y = vec![0.0; len];
        let mut arg = vec![0u32; len];
        let mut gx = vec![0.0; x.len()];
        let times = [
            common::best_ms(&mut || max_pool2d_forward(&p, &x, &mut y, &mut arg)),
            common::best_ms(&mut || max_pool2d_backward(&p, &y, &arg, &mut gx)),
            common::best_ms(&mut || avg_pool2d_forward(&p, false, &x, &mut y)),
            common::best_ms(&mut || avg_pool2d_backward(&p, false, &y, &mut gx)),
        ];
        for (t, v) in total.iter_mut().zip(times) {
            *t += v;
        }
        let [a, b, e, f] = times;
        println!("C{c} {hw}x{hw} s{s}: max fwd {a:.3} ms  bwd {b:.3} ms   avg fwd {e:.3} ms  bwd {f:.3} ms");
    }
    let [a, b, e, f] = total;
    println!("sum: max fwd {a:.3} ms  bwd {b:.3} ms   avg fwd {e:.3} ms  bwd {f:.3} ms");
}
