// WGSL compute kernels of the nas wgpu backend. Every entry point shares one binding
// layout: 16 u32 parameters (uniform), two read-only f32 inputs, an f32 output and a
// u32 output. 1-D kernels run 64 invocations per workgroup over a 2-D grid of
// workgroups (x up to 65535), so `index` linearises it.

@group(0) @binding(0) var<uniform> P: array<vec4<u32>, 4>;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
@group(0) @binding(4) var<storage, read_write> I: array<u32>;

fn p(i: u32) -> u32 {
    return P[i / 4u][i % 4u];
}

fn pf(i: u32) -> f32 {
    return bitcast<f32>(p(i));
}

fn index(id: vec3<u32>, nw: vec3<u32>) -> u32 {
    return id.x + id.y * nw.x * 64u;
}

// P: n, op, a, b. op: 0 copy, 1 relu, 2 exp, 3 log, 4 sigmoid, 5 tanh, 6 x*a+b, 7 neg.
@compute @workgroup_size(64)
fn unary(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = index(id, nw);
    if (i >= p(0u)) {
        return;
    }
    let v = A[i];
    var r = v;
    switch p(1u) {
        case 1u: { r = select(0.0, v, v > 0.0); }
        case 2u: { r = exp(v); }
        case 3u: { r = log(v); }
        case 4u: { r = 1.0 / (1.0 + exp(-v)); }
        case 5u: { r = tanh(v); }
        case 6u: { r = v * pf(2u) + pf(3u); }
        case 7u: { r = -v; }
        default: {}
    }
    Y[i] = r;
}

// Same-shape binary op. P: n, op (0 add, 1 sub, 2 mul, 3 div).
@compute @workgroup_size(64)
fn binary(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = index(id, nw);
    if (i >= p(0u)) {
        return;
    }
    let u = A[i];
    let v = B[i];
    var r = u + v;
    switch p(1u) {
        case 1u: { r = u - v; }
        case 2u: { r = u * v; }
        case 3u: { r = u / v; }
        default: {}
    }
    Y[i] = r;
}

var<workgroup> As: array<array<f32, 16>, 16>;
var<workgroup> Bs: array<array<f32, 16>, 16>;

// C[m,n] = A[m,k] x B[k,n], A or B read transposed. P: m, n, k, ta, tb.
// Workgroups: (ceil(n/16), ceil(m/16)).
@compute @workgroup_size(16, 16)
fn matmul(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let m = p(0u);
    let n = p(1u);
    let k = p(2u);
    let row = wid.y * 16u + lid.y;
    let col = wid.x * 16u + lid.x;
    var s = 0.0;
    for (var t = 0u; t < k; t = t + 16u) {
        let ak = t + lid.x;
        let bk = t + lid.y;
        var av = 0.0;
        if (row < m && ak < k) {
            if (p(3u) == 1u) {
                av = A[ak * m + row];
            } else {
                av = A[row * k + ak];
            }
        }
        var bv = 0.0;
        if (bk < k && col < n) {
            if (p(4u) == 1u) {
                bv = B[col * k + bk];
            } else {
                bv = B[bk * n + col];
            }
        }
        As[lid.y][lid.x] = av;
        Bs[lid.y][lid.x] = bv;
        workgroupBarrier();
        for (var q = 0u; q < 16u; q = q + 1u) {
            s = s + As[lid.y][q] * Bs[q][lid.x];
        }
        workgroupBarrier();
    }
    if (row < m && col < n) {
        Y[row * n + col] = s;
    }
}

// Direct 2-D convolution of NCHW `A` with `[cout, cin/groups, kh, kw]` weights `B`.
// P: n, cin, h, w, cout, kh, kw, sh, sw, ph, pw, dh, dw, groups, oh, ow.
@compute @workgroup_size(64)
fn conv2d(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = index(id, nw);
    let cin = p(1u);
    let h = p(2u);
    let w = p(3u);
    let cout = p(4u);
    let kh = p(5u);
    let kw = p(6u);
    let oh = p(14u);
    let ow = p(15u);
    if (i >= p(0u) * cout * oh * ow) {
        return;
    }
    let ox = i % ow;
    let oy = (i / ow) % oh;
    let co = (i / (ow * oh)) % cout;
    let b = i / (ow * oh * cout);
    let cin_g = cin / p(13u);
    let g = co / (cout / p(13u));
    var s = 0.0;
    for (var ci = 0u; ci < cin_g; ci = ci + 1u) {
        let c = g * cin_g + ci;
        for (var ki = 0u; ki < kh; ki = ki + 1u) {
            let iy = i32(oy * p(7u) + ki * p(11u)) - i32(p(9u));
            if (iy < 0 || iy >= i32(h)) {
                continue;
            }
            for (var kj = 0u; kj < kw; kj = kj + 1u) {
                let ix = i32(ox * p(8u) + kj * p(12u)) - i32(p(10u));
                if (ix < 0 || ix >= i32(w)) {
                    continue;
                }
                let wv = B[((co * cin_g + ci) * kh + ki) * kw + kj];
                s = s + wv * A[((b * cin + c) * h + u32(iy)) * w + u32(ix)];
            }
        }
    }
    Y[i] = s;
}

// Max pooling with argmax (flat index in the plane); padding is -inf; ties go to the
// first element in row-major order. P: planes, h, w, kh, kw, sh, sw, ph, pw, oh, ow.
@compute @workgroup_size(64)
fn max_pool(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = index(id, nw);
    let h = p(1u);
    let w = p(2u);
    let oh = p(9u);
    let ow = p(10u);
    if (i >= p(0u) * oh * ow) {
        return;
    }
    let ox = i % ow;
    let oy = (i / ow) % oh;
    let plane = i / (ow * oh);
    let y0 = max(i32(oy * p(5u)) - i32(p(7u)), 0);
    let y1 = min(i32(oy * p(5u)) - i32(p(7u)) + i32(p(3u)), i32(h));
    let x0 = max(i32(ox * p(6u)) - i32(p(8u)), 0);
    let x1 = min(i32(ox * p(6u)) - i32(p(8u)) + i32(p(4u)), i32(w));
    var best = bitcast<f32>(0xff800000u);
    var bi = u32(y0) * w + u32(x0);
    for (var iy = y0; iy < y1; iy = iy + 1) {
        for (var ix = x0; ix < x1; ix = ix + 1) {
            let at = u32(iy) * w + u32(ix);
            let v = A[plane * h * w + at];
            if (v > best) {
                best = v;
                bi = at;
            }
        }
    }
    Y[i] = best;
    I[i] = bi;
}

// Row-wise log-softmax of [rows, cols], one invocation per row. P: rows, cols.
@compute @workgroup_size(64)
fn log_softmax(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let r = index(id, nw);
    let cols = p(1u);
    if (r >= p(0u)) {
        return;
    }
    var m = bitcast<f32>(0xff800000u);
    for (var j = 0u; j < cols; j = j + 1u) {
        m = max(m, A[r * cols + j]);
    }
    var s = 0.0;
    for (var j = 0u; j < cols; j = j + 1u) {
        s = s + exp(A[r * cols + j] - m);
    }
    let lse = m + log(s);
    for (var j = 0u; j < cols; j = j + 1u) {
        Y[r * cols + j] = A[r * cols + j] - lse;
    }
}

// Convolution input gradient: one invocation per input element, gathering every output
// that read it. A = output gradient, B = weights. P as for conv2d.
@compute @workgroup_size(64)
fn conv2d_backward_input(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = index(id, nw);
    let cin = p(1u);
    let h = p(2u);
    let w = p(3u);
    let cout = p(4u);
    let kh = p(5u);
    let kw = p(6u);
    let oh = p(14u);
    let ow = p(15u);
    if (i >= p(0u) * cin * h * w) {
        return;
    }
    let ix = i % w;
    let iy = (i / w) % h;
    let c = (i / (w * h)) % cin;
    let b = i / (w * h * cin);
    let groups = p(13u);
    let cin_g = cin / groups;
    let cout_g = cout / groups;
    let g = c / cin_g;
    let ci = c % cin_g;
    var s = 0.0;
    for (var ki = 0u; ki < kh; ki = ki + 1u) {
        let ty = i32(iy + p(9u)) - i32(ki * p(11u));
        if (ty < 0 || ty % i32(p(7u)) != 0) {
            continue;
        }
        let oy = u32(ty) / p(7u);
        if (oy >= oh) {
            continue;
        }
        for (var kj = 0u; kj < kw; kj = kj + 1u) {
            let tx = i32(ix + p(10u)) - i32(kj * p(12u));
            if (tx < 0 || tx % i32(p(8u)) != 0) {
                continue;
            }
            let ox = u32(tx) / p(8u);
            if (ox >= ow) {
                continue;
            }
            for (var cj = 0u; cj < cout_g; cj = cj + 1u) {
                let co = g * cout_g + cj;
                s = s + B[((co * cin_g + ci) * kh + ki) * kw + kj] * A[((b * cout + co) * oh + oy) * ow + ox];
            }
        }
    }
    Y[i] = s;
}

// Convolution weight gradient: one invocation per weight element, reducing over the
// batch and the output plane. A = input, B = output gradient. P as for conv2d.
@compute @workgroup_size(64)
fn conv2d_backward_weight(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = index(id, nw);
    let cin = p(1u);
    let h = p(2u);
    let w = p(3u);
    let cout = p(4u);
    let kh = p(5u);
    let kw = p(6u);
    let oh = p(14u);
    let ow = p(15u);
    let groups = p(13u);
    let cin_g = cin / groups;
    if (i >= cout * cin_g * kh * kw) {
        return;
    }
    let kj = i % kw;
    let ki = (i / kw) % kh;
    let ci = (i / (kw * kh)) % cin_g;
    let co = i / (kw * kh * cin_g);
    let c = (co / (cout / groups)) * cin_g + ci;
    var s = 0.0;
    for (var b = 0u; b < p(0u); b = b + 1u) {
        for (var oy = 0u; oy < oh; oy = oy + 1u) {
            let iy = i32(oy * p(7u) + ki * p(11u)) - i32(p(9u));
            if (iy < 0 || iy >= i32(h)) {
                continue;
            }
            for (var ox = 0u; ox < ow; ox = ox + 1u) {
                let ix = i32(ox * p(8u) + kj * p(12u)) - i32(p(10u));
                if (ix < 0 || ix >= i32(w)) {
                    continue;
                }
                s = s + B[((b * cout + co) * oh + oy) * ow + ox] * A[((b * cin + c) * h + u32(iy)) * w + u32(ix)];
            }
        }
    }
    Y[i] = s;
}
