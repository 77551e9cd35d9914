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

// The item of a kernel that takes a workgroup per item (an output, a row), over a 2-D grid
// of workgroups (x up to 65535).
fn group_index(wid: vec3<u32>, nw: vec3<u32>) -> u32 {
    return wid.x + wid.y * nw.x;
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

// Dropout mask values (cpu::random's reference, bit for bit). P: n, s0, s1, below, keep.
fn mix(v: u32) -> u32 {
    var x = v;
    x ^= x >> 16u;
    x *= 0x7feb352du;
    x ^= x >> 15u;
    x *= 0x846ca68bu;
    x ^= x >> 16u;
    return x;
}

@compute @workgroup_size(64)
fn dropout_mask(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = index(id, nw);
    if (i >= p(0u)) {
        return;
    }
    let bits = mix(mix(mix(i) ^ p(1u)) ^ p(2u));
    Y[i] = select(pf(4u), 0.0, bits < p(3u));
}

// Same-shape binary op. P: n, op (0 add, 1 sub, 2 mul, 3 div, 4 ReLU gradient: u where
// the ReLU's output v is positive, else 0; 5 sigmoid gradient u * v * (1 - v) and 6 tanh
// gradient u * (1 - v * v), v the activation's output).
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
        case 4u: { r = select(0.0, u, v > 0.0); }
        case 5u: { r = u * v * (1.0 - v); }
        case 6u: { r = u * (1.0 - v * v); }
        default: {}
    }
    Y[i] = r;
}

// The index into an operand of 6-d shape P[src..src + 6] (1 where it broadcasts) of
// element `i` of the result, whose shape is the larger of P[2..8] and P[8..14] per axis.
fn bcast_index(i: u32, src: u32) -> u32 {
    var rem = i;
    var idx = 0u;
    var stride = 1u;
    for (var k = 5i; k >= 0; k--) {
        let d = max(p(2u + u32(k)), p(8u + u32(k)));
        let c = rem % d;
        rem = rem / d;
        let s = p(src + u32(k));
        if (s != 1u) {
            idx += c * stride;
        }
        stride *= s;
    }
    return idx;
}

// Broadcasting binary op over 6-d shapes (right-aligned, padded with 1). P: n, op (0 add,
// 1 sub, 2 mul, 3 div), A's dims, B's dims.
@compute @workgroup_size(64)
fn binary_bcast(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = index(id, nw);
    if (i >= p(0u)) {
        return;
    }
    let u = A[bcast_index(i, 2u)];
    let v = B[bcast_index(i, 8u)];
    var r = u + v;
    switch p(1u) {
        case 1u: { r = u - v; }
        case 2u: { r = u * v; }
        case 3u: { r = u / v; }
        default: {}
    }
    Y[i] = r;
}

// Where the values summed into output j of a reduce_to (below) lie: the output's
// coordinates, and the span of each axis it sums over (1 where it keeps the axis).
struct Summed {
    coord: array<u32, 6>,
    span: array<u32, 6>,
    // How many values are summed into the output.
    count: u32,
}

fn summed(j: u32) -> Summed {
    var t: Summed;
    var rem = j;
    t.count = 1u;
    for (var k = 5i; k >= 0; k--) {
        let dx = p(7u + u32(k));
        t.coord[k] = rem % dx;
        rem = rem / dx;
        t.span[k] = select(1u, p(1u + u32(k)), dx == 1u);
        t.count = t.count * t.span[k];
    }
    return t;
}

// The index into A of the r-th value summed into t's output.
fn summed_at(t: Summed, r: u32) -> u32 {
    var q = r;
    var idx = 0u;
    var stride = 1u;
    for (var k = 5i; k >= 0; k--) {
        var c = t.coord[k];
        if (t.span[k] > 1u) {
            c = q % t.span[k];
            q = q / t.span[k];
        }
        idx += c * stride;
        stride *= p(1u + u32(k));
    }
    return idx;
}

// A (6-d shape P[1..7]) summed down to the 6-d shape P[7..13], which has 1s where A's
// dims are summed, for short sums: one invocation per output, looping over the values
// that map to it. P: outputs, A's dims, the output's dims.
@compute @workgroup_size(64)
fn reduce_to(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let j = index(id, nw);
    if (j >= p(0u)) {
        return;
    }
    let t = summed(j);
    let total = t.count;
    var s = 0.0;
    for (var r = 0u; r < total; r++) {
        s += A[summed_at(t, r)];
    }
    Y[j] = s;
}

// reduce_to for long sums: one workgroup per output and part, its 64 lanes striding over
// the part's values and then added up. Part z of output j sums values z * P[13] up to
// (z + 1) * P[13] of the output's, into Y[z * outputs + j] (sum_parts adds the parts up
// where there are several): no lane loops more than P[13] / 64 times (llvmpipe stops a
// shader after 65,535 loop iterations in all). P: as reduce_to's, then the part's length.
// Workgroups: x and y over the outputs (x up to 65,535), z over the parts.
@compute @workgroup_size(64)
fn reduce_to_lanes(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let j = group_index(wid, nw);
    let outputs = p(0u);
    if (j >= outputs) {
        return;
    }
    let l = lid.x;
    let t = summed(j);
    let total = t.count;
    let start = wid.z * p(13u);
    let end = min(total, start + p(13u));
    var s = 0.0;
    for (var r = start + l; r < end; r = r + 64u) {
        s += A[summed_at(t, r)];
    }
    red[l] = s;
    red2[l] = 0.0;
    reduce_lanes(l);
    if (l == 0u) {
        Y[wid.z * outputs + j] = red[0];
    }
}

// Each k x k plane of A written into a zero size x size plane, tap (a, b) at (off + a*dil,
// off + b*dil). P: planes * size * size, k, size, dil, off.
@compute @workgroup_size(64)
fn embed_kernel(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = index(id, nw);
    if (i >= p(0u)) {
        return;
    }
    let k = p(1u);
    let size = p(2u);
    let dil = p(3u);
    let off = p(4u);
    let big = size * size;
    let plane = i / big;
    let r = (i % big) / size;
    let c = i % size;
    var v = 0.0;
    if (r >= off && c >= off) {
        let dr = r - off;
        let dc = c - off;
        if (dr % dil == 0u && dc % dil == 0u && dr / dil < k && dc / dil < k) {
            v = A[(plane * k + dr / dil) * k + dc / dil];
        }
    }
    Y[i] = v;
}

// The gradient of `embed_kernel`: each tap read back from its large plane. P: planes * k *
// k, k, size, dil, off.
@compute @workgroup_size(64)
fn embed_kernel_backward(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = index(id, nw);
    if (i >= p(0u)) {
        return;
    }
    let k = p(1u);
    let size = p(2u);
    let dil = p(3u);
    let off = p(4u);
    let plane = i / (k * k);
    let a = (i % (k * k)) / k;
    let b = i % k;
    Y[i] = A[plane * size * size + (off + a * dil) * size + off + b * dil];
}

// Y[i] = A[i] + B[(i / plane) % c]: a per-channel bias on NCHW (plane = h * w) or a
// per-column bias on rows (plane = 1). P: total, c, plane.
@compute @workgroup_size(64)
fn add_channel(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = index(id, nw);
    if (i >= p(0u)) {
        return;
    }
    Y[i] = A[i] + B[(i / p(2u)) % p(1u)];
}

// A permuted: Y[i] = A at output position i, whose coordinates (over the output dims
// d0..d5) each step their input stride s0..s5. P: n, d0..d5, s0..s5.
@compute @workgroup_size(64)
fn permute(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = index(id, nw);
    if (i >= p(0u)) {
        return;
    }
    var rem = i;
    var src = 0u;
    for (var d = 6u; d > 0u; d = d - 1u) {
        let dim = p(d);
        src = src + (rem % dim) * p(6u + d);
        rem = rem / dim;
    }
    Y[i] = A[src];
}

// Copies between [outer, len, inner] A and the block at `at` along the middle axis of
// [outer, total, inner] Y (dir 0: concatenation's part, and a slice's gradient into a zero
// Y) or from that block of A to [outer, len, inner] Y (dir 1: a slice, and concatenation's
// gradient). P: outer, len, inner, total, at, dir.
@compute @workgroup_size(64)
fn axis_block(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = index(id, nw);
    let len = p(1u);
    let inner = p(2u);
    if (i >= p(0u) * len * inner) {
        return;
    }
    let o = i / (len * inner);
    let j = (i / inner) % len;
    let big = (o * p(3u) + p(4u) + j) * inner + i % inner;
    if (p(5u) == 0u) {
        Y[big] = A[i];
    } else {
        Y[i] = A[big];
    }
}

// u32(a / b) for a below 2^24 (exact there: the rounded f32 quotient of two exact
// integers never crosses the next integer), as one vector float division where integer
// division would be eight scalar ones on a CPU driver.
fn fdiv(a: u32, b: u32) -> u32 {
    return u32(f32(a) / f32(b));
}

// Row `row` of a matmul block into Y at `base`: columns col0..col0+8 (lo, hi) inside m x n.
fn put(base: u32, row: u32, col0: u32, lo: vec4<f32>, hi: vec4<f32>) {
    let n = p(1u);
    if (row >= p(0u)) {
        return;
    }
    let o = base + row * n + col0;
    let left = n - col0;
    if (left >= 8u) {
        Y[o] = lo.x;
        Y[o + 1u] = lo.y;
        Y[o + 2u] = lo.z;
        Y[o + 3u] = lo.w;
        Y[o + 4u] = hi.x;
        Y[o + 5u] = hi.y;
        Y[o + 6u] = hi.z;
        Y[o + 7u] = hi.w;
        return;
    }
    for (var j = 0u; j < left; j = j + 1u) {
        if (j < 4u) {
            Y[o + j] = lo[j];
        } else {
            Y[o + j] = hi[j - 4u];
        }
    }
}

// C = A x B, either operand read transposed, for a batch of matrices at once. P: m, n,
// k, ta, tb, sa, sb, sc, nb, kc, z0: slice z = z0 + the grid's z computes the product of
// the pair b = z % nb starting b * sa floats into A and b * sb into B, over part z / nb of
// k (kc long: no loop longer than that), into C at z * sc (z0 lets a batch past the
// grid's 65,535 rows take several dispatches). Each invocation
// computes an 8x8 block of C straight from the storage buffers, written out by hand so
// the accumulators stay in registers: no workgroup memory and no barriers, which CPU
// Vulkan drivers emulate at great cost. Rows and columns past the edge read the last row
// or column (clamped, so the inner loop has no branches) and are not written.
// Workgroups: 1-D over ceil(m/8) * ceil(n/8) blocks (index), z over pairs and parts of k.
@compute @workgroup_size(64)
fn matmul(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let m = p(0u);
    let n = p(1u);
    let k = p(2u);
    let bn = (n + 7u) / 8u;
    let t = id.x + id.y * nw.x * 64u;
    if (t >= ((m + 7u) / 8u) * bn) {
        return;
    }
    let row0 = (t / bn) * 8u;
    let col0 = (t % bn) * 8u;
    // Element (r, q) of A at r * ar + q * aq; element (q, c) of B at q * bq + c * bc.
    var ar = k;
    var aq = 1u;
    if (p(3u) == 1u) {
        ar = 1u;
        aq = m;
    }
    var bq = n;
    var bc = 1u;
    if (p(4u) == 1u) {
        bq = 1u;
        bc = k;
    }
    let r0 = min(row0 + 0u, m - 1u) * ar;
    let r1 = min(row0 + 1u, m - 1u) * ar;
    let r2 = min(row0 + 2u, m - 1u) * ar;
    let r3 = min(row0 + 3u, m - 1u) * ar;
    let r4 = min(row0 + 4u, m - 1u) * ar;
    let r5 = min(row0 + 5u, m - 1u) * ar;
    let r6 = min(row0 + 6u, m - 1u) * ar;
    let r7 = min(row0 + 7u, m - 1u) * ar;
    let c0 = min(col0 + 0u, n - 1u) * bc;
    let c1 = min(col0 + 1u, n - 1u) * bc;
    let c2 = min(col0 + 2u, n - 1u) * bc;
    let c3 = min(col0 + 3u, n - 1u) * bc;
    let c4 = min(col0 + 4u, n - 1u) * bc;
    let c5 = min(col0 + 5u, n - 1u) * bc;
    let c6 = min(col0 + 6u, n - 1u) * bc;
    let c7 = min(col0 + 7u, n - 1u) * bc;
    var l0 = vec4<f32>();
    var h0 = vec4<f32>();
    var l1 = vec4<f32>();
    var h1 = vec4<f32>();
    var l2 = vec4<f32>();
    var h2 = vec4<f32>();
    var l3 = vec4<f32>();
    var h3 = vec4<f32>();
    var l4 = vec4<f32>();
    var h4 = vec4<f32>();
    var l5 = vec4<f32>();
    var h5 = vec4<f32>();
    var l6 = vec4<f32>();
    var h6 = vec4<f32>();
    var l7 = vec4<f32>();
    var h7 = vec4<f32>();
    // Slice z (this dispatch's first, P10, plus the grid's z): pair z % nb of the batch,
    // over part z / nb of k.
    let z = id.z + p(10u);
    let nb = max(p(8u), 1u);
    let abase = (z % nb) * p(5u);
    let bbase = (z % nb) * p(6u);
    let q0 = (z / nb) * p(9u);
    let q1 = min(k, q0 + p(9u));
    for (var q = q0; q < q1; q = q + 1u) {
        let bo = bbase + q * bq;
        let b0 = vec4<f32>(B[bo + c0], B[bo + c1], B[bo + c2], B[bo + c3]);
        let b1 = vec4<f32>(B[bo + c4], B[bo + c5], B[bo + c6], B[bo + c7]);
        let ao = abase + q * aq;
        let a0 = A[ao + r0];
        l0 = l0 + a0 * b0;
        h0 = h0 + a0 * b1;
        let a1 = A[ao + r1];
        l1 = l1 + a1 * b0;
        h1 = h1 + a1 * b1;
        let a2 = A[ao + r2];
        l2 = l2 + a2 * b0;
        h2 = h2 + a2 * b1;
        let a3 = A[ao + r3];
        l3 = l3 + a3 * b0;
        h3 = h3 + a3 * b1;
        let a4 = A[ao + r4];
        l4 = l4 + a4 * b0;
        h4 = h4 + a4 * b1;
        let a5 = A[ao + r5];
        l5 = l5 + a5 * b0;
        h5 = h5 + a5 * b1;
        let a6 = A[ao + r6];
        l6 = l6 + a6 * b0;
        h6 = h6 + a6 * b1;
        let a7 = A[ao + r7];
        l7 = l7 + a7 * b0;
        h7 = h7 + a7 * b1;
    }
    let cbase = z * p(7u);
    put(cbase, row0 + 0u, col0, l0, h0);
    put(cbase, row0 + 1u, col0, l1, h1);
    put(cbase, row0 + 2u, col0, l2, h2);
    put(cbase, row0 + 3u, col0, l3, h3);
    put(cbase, row0 + 4u, col0, l4, h4);
    put(cbase, row0 + 5u, col0, l5, h5);
    put(cbase, row0 + 6u, col0, l6, h6);
    put(cbase, row0 + 7u, col0, l7, h7);
}

// Y[i] = sum over s < parts of A[s * len + i]: partial products summed. P: len, parts.
@compute @workgroup_size(64)
fn sum_parts(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = index(id, nw);
    let len = p(0u);
    if (i >= len) {
        return;
    }
    var s = 0.0;
    for (var j = 0u; j < p(1u); j = j + 1u) {
        s = s + A[j * len + i];
    }
    Y[i] = s;
}

// im2col of NCHW `A` for an ungrouped convolution: Y = [n, cin * kh * kw, oh * ow], row
// (c * kh + ki) * kw + kj of image b holding the input under that kernel tap at every
// output position (0 in the padding). P as for conv2d. Workgroups: (ceil(oh * ow / 64),
// cin * kh * kw, n), so only the position within the plane varies across a workgroup.
@compute @workgroup_size(64)
fn im2col(@builtin(global_invocation_id) id: vec3<u32>) {
    let cin = p(1u);
    let h = p(2u);
    let w = p(3u);
    let kh = p(5u);
    let kw = p(6u);
    let ow = p(15u);
    let plane = p(14u) * ow;
    let pix = id.x;
    if (pix >= plane) {
        return;
    }
    let r = id.y;
    let b = id.z;
    let kk = cin * kh * kw;
    let rk = fdiv(r, kw);
    let kj = r - rk * kw;
    let c = fdiv(rk, kh);
    let ki = rk - c * kh;
    let oy = fdiv(pix, ow);
    let ox = pix - oy * ow;
    let iy = i32(oy * p(7u) + ki * p(11u)) - i32(p(9u));
    let ix = i32(ox * p(8u) + kj * p(12u)) - i32(p(10u));
    var v = 0.0;
    if (iy >= 0 && iy < i32(h) && ix >= 0 && ix < i32(w)) {
        v = A[((b * cin + c) * h + u32(iy)) * w + u32(ix)];
    }
    Y[(b * kk + r) * plane + pix] = v;
}

// col2im: the input gradient of an ungrouped convolution from the gradient of its im2col
// matrix `A` ([n, cin * kh * kw, oh * ow]), one invocation per input element gathering
// the taps that read it. P as for conv2d. Workgroups: (ceil(h * w / 64), cin, n).
@compute @workgroup_size(64)
fn col2im(@builtin(global_invocation_id) id: vec3<u32>) {
    let cin = p(1u);
    let h = p(2u);
    let w = p(3u);
    let kh = p(5u);
    let kw = p(6u);
    let oh = p(14u);
    let ow = p(15u);
    let sh = p(7u);
    let sw = p(8u);
    let at = id.x;
    if (at >= h * w) {
        return;
    }
    let c = id.y;
    let b = id.z;
    let iy = fdiv(at, w);
    let ix = at - iy * w;
    let plane = oh * ow;
    let base = (b * cin + c) * kh * kw;
    var s = 0.0;
    for (var ki = 0u; ki < kh; ki = ki + 1u) {
        let ty = i32(iy + p(9u)) - i32(ki * p(11u));
        if (ty < 0) {
            continue;
        }
        let oy = fdiv(u32(ty), sh);
        if (oy * sh != u32(ty) || oy >= oh) {
            continue;
        }
        for (var kj = 0u; kj < kw; kj = kj + 1u) {
            let tx = i32(ix + p(10u)) - i32(kj * p(12u));
            if (tx < 0) {
                continue;
            }
            let ox = fdiv(u32(tx), sw);
            if (ox * sw != u32(tx) || ox >= ow) {
                continue;
            }
            s = s + A[(base + ki * kw + kj) * plane + oy * ow + ox];
        }
    }
    Y[(b * cin + c) * h * w + at] = s;
}

// The direct convolution kernels below (grouped and depthwise convolutions; ungrouped
// ones run as im2col and matmul) tile each plane in 8x8 blocks, a workgroup per block
// and plane, so the plane's coordinates are per workgroup and an invocation divides
// nothing (llvmpipe divides lane by lane, which made the division the dearest part of a
// small kernel). Workgroups: x + nw.x * (y % yb) is the block within the plane (row by
// row), yb the grid rows one plane's blocks take; y / yb + (nw.y / yb) * z is the plane.
// Returns (x, y, plane) of this invocation in a plane `width` x `height`.
fn tile(lid: vec3<u32>, wid: vec3<u32>, nw: vec3<u32>, width: u32, height: u32) -> vec3<u32> {
    let bx = (width + 7u) / 8u;
    let yb = (bx * ((height + 7u) / 8u) + nw.x - 1u) / nw.x;
    let block = wid.x + nw.x * (wid.y % yb);
    let plane = wid.y / yb + (nw.y / yb) * wid.z;
    return vec3<u32>((block % bx) * 8u + lid.x, (block / bx) * 8u + lid.y, plane);
}

// Direct 2-D convolution of NCHW `A` with `[cout, cin/groups, kh, kw]` weights `B`.
// P: n, cin, h, w, cout, kh, kw, sh, sw, ph, pw, dh, dw, groups, oh, ow. Tiled over the
// output planes.
@compute @workgroup_size(8, 8)
fn conv2d(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let cin = p(1u);
    let h = p(2u);
    let w = p(3u);
    let cout = p(4u);
    let kh = p(5u);
    let kw = p(6u);
    let oh = p(14u);
    let ow = p(15u);
    let t = tile(lid, wid, nw, ow, oh);
    if (t.x >= ow || t.y >= oh || t.z >= p(0u) * cout) {
        return;
    }
    let co = t.z % cout;
    let b = t.z / cout;
    let cin_g = cin / p(13u);
    let g = co / (cout / p(13u));
    let iy0 = i32(t.y * p(7u)) - i32(p(9u));
    let ix0 = i32(t.x * p(8u)) - i32(p(10u));
    var s = 0.0;
    if (cin_g == 1u) {
        // One input channel per output channel (depthwise): no loop over channels.
        let xp = (b * cin + g) * h;
        for (var ki = 0u; ki < kh; ki = ki + 1u) {
            let iy = iy0 + i32(ki * p(11u));
            if (iy < 0 || iy >= i32(h)) {
                continue;
            }
            let row = (xp + u32(iy)) * w;
            let wrow = (co * kh + ki) * kw;
            for (var kj = 0u; kj < kw; kj = kj + 1u) {
                let ix = ix0 + i32(kj * p(12u));
                if (ix < 0 || ix >= i32(w)) {
                    continue;
                }
                s = s + B[wrow + kj] * A[row + u32(ix)];
            }
        }
        Y[(t.z * oh + t.y) * ow + t.x] = s;
        return;
    }
    for (var ci = 0u; ci < cin_g; ci = ci + 1u) {
        let xp = (b * cin + g * cin_g + ci) * h;
        let wp = (co * cin_g + ci) * kh;
        for (var ki = 0u; ki < kh; ki = ki + 1u) {
            let iy = iy0 + i32(ki * p(11u));
            if (iy < 0 || iy >= i32(h)) {
                continue;
            }
            let row = (xp + u32(iy)) * w;
            let wrow = (wp + ki) * kw;
            for (var kj = 0u; kj < kw; kj = kj + 1u) {
                let ix = ix0 + i32(kj * p(12u));
                if (ix < 0 || ix >= i32(w)) {
                    continue;
                }
                s = s + B[wrow + kj] * A[row + u32(ix)];
            }
        }
    }
    Y[(t.z * oh + t.y) * ow + t.x] = s;
}

// The input rows (or columns) under output `o`'s pooling window (stride s, padding pad,
// size k), clipped to [0, len): [lo, hi).
fn window(o: u32, s: u32, pad: u32, k: u32, len: u32) -> vec2<i32> {
    let start = i32(o * s) - i32(pad);
    return vec2<i32>(max(start, 0), min(start + i32(k), i32(len)));
}

// Max pooling with argmax (flat index in the plane); padding is -inf; ties go to the
// first element in row-major order; a NaN is taken as it comes, so a window holding one
// gives NaN at its last NaN, as on the CPU (tested on its bits: a shader compiler may
// assume `v != v` false). P: planes, h, w, kh, kw, sh, sw, ph, pw, oh, ow.
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
    let wy = window(oy, p(5u), p(7u), p(3u), h);
    let wx = window(ox, p(6u), p(8u), p(4u), w);
    var best = bitcast<f32>(0xff800000u);
    var bi = u32(wy.x) * w + u32(wx.x);
    for (var iy = wy.x; iy < wy.y; iy = iy + 1) {
        for (var ix = wx.x; ix < wx.y; ix = ix + 1) {
            let at = u32(iy) * w + u32(ix);
            let v = A[plane * h * w + at];
            let nan = (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
            if (v > best || nan) {
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

// log_softmax for wide rows: one workgroup per row (x and y over the rows), its 64 lanes
// striding over the columns, so no lane loops more than 3 * cols / 64 times (the
// one-invocation kernel above loops 3 * cols times, past llvmpipe's 65,535 iterations
// per shader beyond 21,845 columns). P: rows, cols.
@compute @workgroup_size(64)
fn log_softmax_lanes(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let r = group_index(wid, nw);
    if (r >= p(0u)) {
        return;
    }
    let cols = p(1u);
    let l = lid.x;
    var m = bitcast<f32>(0xff800000u);
    for (var j = l; j < cols; j = j + 64u) {
        m = max(m, A[r * cols + j]);
    }
    red[l] = m;
    red2[l] = 0.0;
    max_lanes(l);
    let mx = red[0];
    workgroupBarrier();
    var s = 0.0;
    for (var j = l; j < cols; j = j + 64u) {
        s = s + exp(A[r * cols + j] - mx);
    }
    red[l] = s;
    reduce_lanes(l);
    let lse = mx + log(red[0]);
    for (var j = l; j < cols; j = j + 64u) {
        Y[r * cols + j] = A[r * cols + j] - lse;
    }
}

// Gradient of conv2d for its input. A = output gradient, B = weights. P as for conv2d.
// Tiled over the input planes (see `tile`).
@compute @workgroup_size(8, 8)
fn conv2d_backward_input(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let cin = p(1u);
    let h = p(2u);
    let w = p(3u);
    let cout = p(4u);
    let kh = p(5u);
    let kw = p(6u);
    let sh = p(7u);
    let sw = p(8u);
    let oh = p(14u);
    let ow = p(15u);
    let t = tile(lid, wid, nw, w, h);
    if (t.x >= w || t.y >= h || t.z >= p(0u) * cin) {
        return;
    }
    let c = t.z % cin;
    let b = t.z / cin;
    let groups = p(13u);
    let cin_g = cin / groups;
    let cout_g = cout / groups;
    let g = c / cin_g;
    let ci = c % cin_g;
    let ty0 = i32(t.y + p(9u));
    let tx0 = i32(t.x + p(10u));
    var s = 0.0;
    if (sh == 1u && sw == 1u && cin_g == 1u && cout_g == 1u) {
        // Depthwise at stride 1 (most of a DARTS cell's): a convolution of the output
        // gradient with the flipped kernel, no divisions and one channel.
        let gp = (b * cout + c) * oh;
        for (var ki = 0u; ki < kh; ki = ki + 1u) {
            let oy = ty0 - i32(ki * p(11u));
            if (oy < 0 || oy >= i32(oh)) {
                continue;
            }
            let row = (gp + u32(oy)) * ow;
            let wrow = (c * kh + ki) * kw;
            for (var kj = 0u; kj < kw; kj = kj + 1u) {
                let ox = tx0 - i32(kj * p(12u));
                if (ox < 0 || ox >= i32(ow)) {
                    continue;
                }
                s = s + B[wrow + kj] * A[row + u32(ox)];
            }
        }
        Y[(t.z * h + t.y) * w + t.x] = s;
        return;
    }
    for (var ki = 0u; ki < kh; ki = ki + 1u) {
        // The output row oy with oy * sh + ki * dh - ph = t.y, if there is one; ty only
        // falls as ki grows.
        let ty = ty0 - i32(ki * p(11u));
        if (ty < 0) {
            break;
        }
        var oy = u32(ty);
        if (sh != 1u) {
            if (oy % sh != 0u) {
                continue;
            }
            oy = oy / sh;
        }
        if (oy >= oh) {
            continue;
        }
        for (var kj = 0u; kj < kw; kj = kj + 1u) {
            let tx = tx0 - i32(kj * p(12u));
            if (tx < 0) {
                break;
            }
            var ox = u32(tx);
            if (sw != 1u) {
                if (ox % sw != 0u) {
                    continue;
                }
                ox = ox / sw;
            }
            if (ox >= ow) {
                continue;
            }
            for (var cj = 0u; cj < cout_g; cj = cj + 1u) {
                let co = g * cout_g + cj;
                s = s + B[((co * cin_g + ci) * kh + ki) * kw + kj] * A[((b * cout + co) * oh + oy) * ow + ox];
            }
        }
    }
    Y[(t.z * h + t.y) * w + t.x] = s;
}

// The outputs o (of `outn`) whose input position o * s + off falls in [0, len): [lo, hi).
fn inside(off: i32, s: u32, len: u32, outn: u32) -> vec2<u32> {
    var lo = 0u;
    if (off < 0) {
        lo = (u32(-off) + s - 1u) / s;
    }
    let lim = i32(len) - off;
    var hi = 0u;
    if (lim > 0) {
        hi = min(outn, (u32(lim) + s - 1u) / s);
    }
    return vec2<u32>(lo, max(lo, hi));
}

// Convolution weight gradient in parts: one invocation per weight element and part,
// reducing over output rows z, z + nw.z, ... of the batch's n * oh (z the workgroup's);
// Y = [parts, weights], which `sum_parts` adds up (with one part, the gradient itself).
// A = input, B = output gradient. P as for conv2d. Splitting the rows gives a GPU enough
// invocations where a depthwise kernel has only a few hundred weights, and keeps each
// invocation's loops short (llvmpipe stops a shader after 65,535 loop iterations in all,
// one count shared by every loop).
@compute @workgroup_size(64)
fn conv2d_backward_weight(@builtin(global_invocation_id) id: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = id.x + id.y * nw.x * 64u;
    let n = p(0u);
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
    let len = cout * cin_g * kh * kw;
    if (i >= len) {
        return;
    }
    let kj = i % kw;
    let ki = (i / kw) % kh;
    let ci = (i / (kw * kh)) % cin_g;
    let co = i / (kw * kh * cin_g);
    let c = (co / (cout / groups)) * cin_g + ci;
    let offy = i32(ki * p(11u)) - i32(p(9u));
    let offx = i32(kj * p(12u)) - i32(p(10u));
    let ys = inside(offy, p(7u), h, oh);
    let xs = inside(offx, p(8u), w, ow);
    var s = 0.0;
    for (var t = wid.z; t < n * oh; t = t + nw.z) {
        let oy = t % oh;
        if (oy < ys.x || oy >= ys.y) {
            continue;
        }
        let b = t / oh;
        let grow = ((b * cout + co) * oh + oy) * ow;
        let xrow = ((b * cin + c) * h + u32(i32(oy * p(7u)) + offy)) * w;
        for (var ox = xs.x; ox < xs.y; ox = ox + 1u) {
            s = s + B[grow + ox] * A[xrow + u32(i32(ox * p(8u)) + offx)];
        }
    }
    Y[wid.z * len + i] = s;
}

// ---------------------------------------------------------------- pooling gradients
// Pool parameters, shared by the kernels below:
// P: planes, h, w, kh, kw, sh, sw, ph, pw, oh, ow (, count_include_pad for avg).

// The output rows (or columns) whose window covers input row `i`: [lo, hi).
fn covering(i: u32, k: u32, s: u32, pad: u32, outn: u32) -> vec2<u32> {
    let t = i32(i + pad);
    let hi = min(t / i32(s) + 1, i32(outn));
    let lo = (max(t - i32(k) + 1, 0) + i32(s) - 1) / i32(s);
    return vec2<u32>(u32(lo), u32(max(hi, lo)));
}

// Max-pool input gradient, gathering every output whose argmax is this pixel: the
// argmax in I as the forward wrote it. A = output gradient.
@compute @workgroup_size(64)
fn max_pool_backward(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = index(id, nw);
    let h = p(1u);
    let w = p(2u);
    let oh = p(9u);
    let ow = p(10u);
    if (i >= p(0u) * h * w) {
        return;
    }
    let ix = i % w;
    let iy = (i / w) % h;
    let plane = i / (w * h);
    let ry = covering(iy, p(3u), p(5u), p(7u), oh);
    let rx = covering(ix, p(4u), p(6u), p(8u), ow);
    let at = iy * w + ix;
    var s = 0.0;
    for (var oy = ry.x; oy < ry.y; oy = oy + 1u) {
        for (var ox = rx.x; ox < rx.y; ox = ox + 1u) {
            let o = (plane * oh + oy) * ow + ox;
            if (I[o] == at) {
                s = s + A[o];
            }
        }
    }
    Y[i] = s;
}

// Average-pool divisor of output (oy, ox), PyTorch's rules.
fn avg_div(oy: u32, ox: u32) -> f32 {
    let h = p(1u);
    let w = p(2u);
    let sy = oy * p(5u);
    let sx = ox * p(6u);
    if (p(11u) == 1u) {
        let ey = min(sy + p(3u), h + 2u * p(7u));
        let ex = min(sx + p(4u), w + 2u * p(8u));
        return f32((ey - sy) * (ex - sx));
    }
    let wy = window(oy, p(5u), p(7u), p(3u), h);
    let wx = window(ox, p(6u), p(8u), p(4u), w);
    return f32((wy.y - wy.x) * (wx.y - wx.x));
}

@compute @workgroup_size(64)
fn avg_pool(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
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
    let wy = window(oy, p(5u), p(7u), p(3u), h);
    let wx = window(ox, p(6u), p(8u), p(4u), w);
    var s = 0.0;
    for (var iy = wy.x; iy < wy.y; iy = iy + 1) {
        for (var ix = wx.x; ix < wx.y; ix = ix + 1) {
            s = s + A[(plane * h + u32(iy)) * w + u32(ix)];
        }
    }
    Y[i] = s / avg_div(oy, ox);
}

// Average-pool input gradient, gathering the windows that cover each pixel.
@compute @workgroup_size(64)
fn avg_pool_backward(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = index(id, nw);
    let h = p(1u);
    let w = p(2u);
    let oh = p(9u);
    let ow = p(10u);
    if (i >= p(0u) * h * w) {
        return;
    }
    let ix = i % w;
    let iy = (i / w) % h;
    let plane = i / (w * h);
    let ry = covering(iy, p(3u), p(5u), p(7u), oh);
    let rx = covering(ix, p(4u), p(6u), p(8u), ow);
    var s = 0.0;
    for (var oy = ry.x; oy < ry.y; oy = oy + 1u) {
        for (var ox = rx.x; ox < rx.y; ox = ox + 1u) {
            s = s + A[(plane * oh + oy) * ow + ox] / avg_div(oy, ox);
        }
    }
    Y[i] = s;
}

// PyTorch's adaptive bin [floor(o*len/out), ceil((o+1)*len/out)).
fn bin(o: u32, len: u32, outn: u32) -> vec2<u32> {
    return vec2<u32>(o * len / outn, ((o + 1u) * len + outn - 1u) / outn);
}

// Adaptive average pooling. P: planes, h, w, oh, ow.
@compute @workgroup_size(64)
fn adaptive_avg_pool(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = index(id, nw);
    let h = p(1u);
    let w = p(2u);
    let oh = p(3u);
    let ow = p(4u);
    if (i >= p(0u) * oh * ow) {
        return;
    }
    let ox = i % ow;
    let oy = (i / ow) % oh;
    let plane = i / (ow * oh);
    let by = bin(oy, h, oh);
    let bx = bin(ox, w, ow);
    var s = 0.0;
    for (var iy = by.x; iy < by.y; iy = iy + 1u) {
        for (var ix = bx.x; ix < bx.y; ix = ix + 1u) {
            s = s + A[(plane * h + iy) * w + ix];
        }
    }
    Y[i] = s / f32((by.y - by.x) * (bx.y - bx.x));
}

@compute @workgroup_size(64)
fn adaptive_avg_pool_backward(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = index(id, nw);
    let h = p(1u);
    let w = p(2u);
    let oh = p(3u);
    let ow = p(4u);
    if (i >= p(0u) * h * w) {
        return;
    }
    let ix = i % w;
    let iy = (i / w) % h;
    let plane = i / (w * h);
    var s = 0.0;
    for (var oy = 0u; oy < oh; oy = oy + 1u) {
        let by = bin(oy, h, oh);
        if (iy < by.x || iy >= by.y) {
            continue;
        }
        for (var ox = 0u; ox < ow; ox = ox + 1u) {
            let bx = bin(ox, w, ow);
            if (ix < bx.x || ix >= bx.y) {
                continue;
            }
            s = s + A[(plane * oh + oy) * ow + ox] / f32((by.y - by.x) * (bx.y - bx.x));
        }
    }
    Y[i] = s;
}

// ---------------------------------------------------------------- batch norm
// One workgroup of 64 per channel for the reductions; `red`/`red2` hold the lanes' parts.
var<workgroup> red: array<f32, 64>;
var<workgroup> red2: array<f32, 64>;

// A lane kernel's part of its `count` values: values start..end of them, part wid.y of
// parts of `len` values each. No loop of a lane runs more than len / 64 times: llvmpipe
// stops a shader's loops after 65,535 iterations in all (shared by every loop).
fn part_range(part: u32, len: u32, count: u32) -> vec2<u32> {
    let start = min(count, part * len);
    return vec2<u32>(start, min(count, start + len));
}

// The largest of the lanes' values in red[0] (red2 untouched).
fn max_lanes(l: u32) {
    workgroupBarrier();
    for (var s = 32u; s > 0u; s = s / 2u) {
        if (l < s) {
            red[l] = max(red[l], red[l + s]);
        }
        workgroupBarrier();
    }
}

fn reduce_lanes(l: u32) {
    workgroupBarrier();
    for (var s = 32u; s > 0u; s = s / 2u) {
        if (l < s) {
            red[l] = red[l] + red[l + s];
            red2[l] = red2[l] + red2[l + s];
        }
        workgroupBarrier();
    }
}

// Running statistics after a batch (PyTorch's update, the variance unbiased): A = [mean(c),
// invstd(c)] of the batch, B = [running mean(c), running var(c)], Y = the new B.
// P: c, count (values per channel in the batch), momentum, eps. Workgroups: 1-D over c.
@compute @workgroup_size(64)
fn bn_running(@builtin(global_invocation_id) id: vec3<u32>) {
    let c = p(0u);
    let ch = id.x;
    if (ch >= c) {
        return;
    }
    let count = p(1u);
    let m = pf(2u);
    var unbias = 1.0;
    if (count > 1u) {
        unbias = f32(count) / f32(count - 1u);
    }
    let is = A[c + ch];
    let v = max(1.0 / (is * is) - pf(3u), 0.0) * unbias;
    Y[ch] = (1.0 - m) * B[ch] + m * A[ch];
    Y[c + ch] = (1.0 - m) * B[c + ch] + m * v;
}

// Per-channel mean and 1/std (biased variance, two passes) of [n, c, hw] A into
// Y = [mean(c), invstd(c)]; with several parts (see part_range), each part's mean and sum
// of squared deviations into Y[part * 2c..], which bn_stats_merge combines.
// P: n, c, hw, eps, part length. Workgroups: (c, parts).
@compute @workgroup_size(64)
fn bn_stats(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let c = p(1u);
    let hw = p(2u);
    let count = p(0u) * hw;
    let ch = wid.x;
    let l = lid.x;
    let r = part_range(wid.y, p(4u), count);
    let start = r.x;
    let end = r.y;
    var s = 0.0;
    for (var i = start + l; i < end; i = i + 64u) {
        s = s + A[((i / hw) * c + ch) * hw + i % hw];
    }
    red[l] = s;
    red2[l] = 0.0;
    reduce_lanes(l);
    let mu = red[0] / f32(end - start);
    workgroupBarrier();
    var q = 0.0;
    for (var i = start + l; i < end; i = i + 64u) {
        let d = A[((i / hw) * c + ch) * hw + i % hw] - mu;
        q = q + d * d;
    }
    red[l] = q;
    reduce_lanes(l);
    if (l == 0u) {
        if (nw.y == 1u) {
            Y[ch] = mu;
            Y[c + ch] = 1.0 / sqrt(red[0] / f32(count) + pf(3u));
        } else {
            Y[wid.y * 2u * c + ch] = mu;
            Y[wid.y * 2u * c + c + ch] = red[0];
        }
    }
}

// acc = (sum, what rounding lost) with x added, Kahan's way.
fn compensated(acc: vec2<f32>, x: f32) -> vec2<f32> {
    let t = x - acc.y;
    let u = acc.x + t;
    return vec2<f32>(u, (u - acc.x) - t);
}

// bn_stats' parts combined into Y = [mean(c), invstd(c)]: the mean of the parts' means
// weighted by their counts, then the sum of squared deviations as each part's own plus
// its count times its mean's squared distance from the mean (Chan, Golub and LeVeque's
// combination), both as compensated sums, since there may be thousands of parts. A = the
// parts' [mean(c), sum(c)] back to back. P: as bn_stats'. Workgroups: 1-D over c.
@compute @workgroup_size(64)
fn bn_stats_merge(@builtin(global_invocation_id) id: vec3<u32>) {
    let c = p(1u);
    let ch = id.x;
    if (ch >= c) {
        return;
    }
    let count = p(0u) * p(2u);
    let len = p(4u);
    let parts = (count + len - 1u) / len;
    // (sum, what rounding lost)
    var s = vec2<f32>();
    for (var j = 0u; j < parts; j = j + 1u) {
        s = compensated(s, f32(min(len, count - j * len)) * A[j * 2u * c + ch]);
    }
    let mean = s.x / f32(count);
    s = vec2<f32>();
    for (var j = 0u; j < parts; j = j + 1u) {
        let d = A[j * 2u * c + ch] - mean;
        s = compensated(s, A[j * 2u * c + c + ch] + f32(min(len, count - j * len)) * d * d);
    }
    Y[ch] = mean;
    Y[c + ch] = 1.0 / sqrt(s.x / f32(count) + pf(3u));
}

// y = (x - mean) * invstd * gamma + beta. A = x; B = [mean, invstd, gamma, beta] (c each).
// P: total, c, hw.
@compute @workgroup_size(64)
fn bn_apply(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = index(id, nw);
    let c = p(1u);
    if (i >= p(0u)) {
        return;
    }
    let ch = (i / p(2u)) % c;
    Y[i] = (A[i] - B[ch]) * (B[c + ch] * B[2u * c + ch]) + B[3u * c + ch];
}

// Per-channel sums of g and g * (x - mean) * invstd into Y = [sum_g(c), sum_gxhat(c)],
// part wid.y's (see part_range) at Y[part * 2c..]. A = x; B = [g (n*c*hw), mean (c),
// invstd (c)]. P: n, c, hw, part length. Workgroups: (c, parts).
@compute @workgroup_size(64)
fn bn_backward_sums(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let c = p(1u);
    let hw = p(2u);
    let count = p(0u) * hw;
    let total = count * c;
    let ch = wid.x;
    let l = lid.x;
    let mu = B[total + ch];
    let is = B[total + c + ch];
    let r = part_range(wid.y, p(3u), count);
    let start = r.x;
    let end = r.y;
    var a = 0.0;
    var b = 0.0;
    for (var i = start + l; i < end; i = i + 64u) {
        let o = ((i / hw) * c + ch) * hw + i % hw;
        a = a + B[o];
        b = b + B[o] * (A[o] - mu);
    }
    red[l] = a;
    red2[l] = b;
    reduce_lanes(l);
    if (l == 0u) {
        Y[wid.y * 2u * c + ch] = red[0];
        Y[wid.y * 2u * c + c + ch] = red2[0] * is;
    }
}

// gx = gamma * invstd * (g - sum_g / m - xhat * sum_gxhat / m), m = n * hw.
// A = x; B = [g (total), mean, invstd, gamma, sum_g, sum_gxhat (c each)]. P: total, c, hw, m.
@compute @workgroup_size(64)
fn bn_backward_input(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = index(id, nw);
    let total = p(0u);
    let c = p(1u);
    if (i >= total) {
        return;
    }
    let ch = (i / p(2u)) % c;
    let m = f32(p(3u));
    let mu = B[total + ch];
    let is = B[total + c + ch];
    let a = B[total + 2u * c + ch] * is;
    let k = a * is * B[total + 4u * c + ch] / m;
    let d = a * B[total + 3u * c + ch] / m;
    Y[i] = a * B[i] - k * (A[i] - mu) - d;
}

// Per-channel sums of [n, c, plane] A into Y (c): a bias's gradient, part wid.y's (see
// part_range) at Y[part * c..]. P: n, c, plane, part length. Workgroups: (c, parts).
@compute @workgroup_size(64)
fn channel_sum(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let c = p(1u);
    let plane = p(2u);
    let count = p(0u) * plane;
    let ch = wid.x;
    let l = lid.x;
    let r = part_range(wid.y, p(3u), count);
    let start = r.x;
    let end = r.y;
    var s = 0.0;
    for (var i = start + l; i < end; i = i + 64u) {
        s = s + A[((i / plane) * c + ch) * plane + i % plane];
    }
    red[l] = s;
    red2[l] = 0.0;
    reduce_lanes(l);
    if (l == 0u) {
        Y[wid.y * c + ch] = red[0];
    }
}

// ---------------------------------------------------------------- mixed op
// A mixed op's output y = sum_j w[j] * x_j. A = [x_0, .., x_{k-1}] (n each), B = w (k).
// P: n, k.
@compute @workgroup_size(64)
fn weighted_sum(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = index(id, nw);
    let n = p(0u);
    if (i >= n) {
        return;
    }
    var s = 0.0;
    for (var j = 0u; j < p(1u); j = j + 1u) {
        s = s + B[j] * A[j * n + i];
    }
    Y[i] = s;
}

// Its input gradients back to back: Y[j * n + i] = w[j] * g[i]. A = g (n), B = w (k).
// P: n, k.
@compute @workgroup_size(64)
fn weighted_sum_backward_input(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = index(id, nw);
    let n = p(0u);
    if (i >= n * p(1u)) {
        return;
    }
    Y[i] = B[i / n] * A[i % n];
}

// Its mixing-weight gradients: Y[j] = dot(g, x_j), part wid.y's (see part_range) at
// Y[part * k + j]. A = [x_0, .., x_{k-1}], B = g (n). P: n, part length.
// Workgroups: (k, parts).
@compute @workgroup_size(64)
fn weighted_sum_backward_weight(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let n = p(0u);
    let j = wid.x;
    let l = lid.x;
    let r = part_range(wid.y, p(1u), n);
    let start = r.x;
    let end = r.y;
    var s = 0.0;
    for (var i = start + l; i < end; i = i + 64u) {
        s = s + B[i] * A[j * n + i];
    }
    red[l] = s;
    red2[l] = 0.0;
    reduce_lanes(l);
    if (l == 0u) {
        Y[wid.y * nw.x + j] = red[0];
    }
}

// ---------------------------------------------------------------- softmax gradient
// gx = g - exp(y) * sum(g) per row. A = y, B = g. P: rows, cols.
@compute @workgroup_size(64)
fn log_softmax_backward(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let r = index(id, nw);
    let cols = p(1u);
    if (r >= p(0u)) {
        return;
    }
    var s = 0.0;
    for (var j = 0u; j < cols; j = j + 1u) {
        s = s + B[r * cols + j];
    }
    for (var j = 0u; j < cols; j = j + 1u) {
        let o = r * cols + j;
        Y[o] = B[o] - exp(A[o]) * s;
    }
}

// log_softmax_backward for wide rows, as log_softmax_lanes: a workgroup per row, its
// lanes striding over the columns. A = y, B = g. P: rows, cols.
@compute @workgroup_size(64)
fn log_softmax_backward_lanes(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let r = group_index(wid, nw);
    if (r >= p(0u)) {
        return;
    }
    let cols = p(1u);
    let l = lid.x;
    var s = 0.0;
    for (var j = l; j < cols; j = j + 64u) {
        s = s + B[r * cols + j];
    }
    red[l] = s;
    red2[l] = 0.0;
    reduce_lanes(l);
    let total = red[0];
    for (var j = l; j < cols; j = j + 64u) {
        let o = r * cols + j;
        Y[o] = B[o] - exp(A[o]) * total;
    }
}

// ---------------------------------------------------------------- NLL loss
// Mean negative log-likelihood Y[0] = -sum_r logp[r, t_r] / rows. A = logp, B = targets
// (exact in f32). P: rows, cols. Workgroups: (1, 1).
@compute @workgroup_size(64)
fn nll(@builtin(local_invocation_id) lid: vec3<u32>) {
    let rows = p(0u);
    let cols = p(1u);
    let l = lid.x;
    var s = 0.0;
    for (var r = l; r < rows; r = r + 64u) {
        s = s - A[r * cols + u32(B[r])];
    }
    red[l] = s;
    red2[l] = 0.0;
    reduce_lanes(l);
    if (l == 0u) {
        Y[0] = red[0] / f32(rows);
    }
}

// Its gradient times the upstream g: -g / rows at each row's target, 0 elsewhere.
// A = targets (exact in f32). P: rows, cols, g.
@compute @workgroup_size(64)
fn nll_backward(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = index(id, nw);
    let rows = p(0u);
    let cols = p(1u);
    if (i >= rows * cols) {
        return;
    }
    Y[i] = select(0.0, -pf(2u) / f32(rows), u32(A[i / cols]) == i % cols);
}

// ---------------------------------------------------------------- optimisers
// PyTorch SGD (dampening 0). A = [w (n), v (n)], B = g; Y = [w', v'].
// P: n, lr, mu, wd, nesterov, first.
@compute @workgroup_size(64)
fn sgd(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = index(id, nw);
    let n = p(0u);
    if (i >= n) {
        return;
    }
    let lr = pf(1u);
    let mu = pf(2u);
    let w = A[i];
    let d = B[i] + pf(3u) * w;
    if (mu == 0.0) {
        Y[i] = w - lr * d;
        Y[n + i] = A[n + i];
        return;
    }
    var v = mu * A[n + i] + d;
    if (p(5u) == 1u) {
        v = d;
    }
    var step = v;
    if (p(4u) == 1u) {
        step = d + mu * v;
    }
    Y[i] = w - lr * step;
    Y[n + i] = v;
}

// Adam (AdamW when decoupled). A = [w, m, v] (n each), B = g; Y = [w', m', v'].
// P: n, lr, b1, b2, eps, wd, decoupled, c1 = 1 - b1^t, c2 = 1 - b2^t.
@compute @workgroup_size(64)
fn adam(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = index(id, nw);
    let n = p(0u);
    if (i >= n) {
        return;
    }
    let lr = pf(1u);
    let b1 = pf(2u);
    let b2 = pf(3u);
    let wd = pf(5u);
    var w = A[i];
    var g = B[i];
    if (p(6u) == 1u) {
        w = w - lr * wd * w;
    } else {
        g = g + wd * w;
    }
    let m = b1 * A[n + i] + (1.0 - b1) * g;
    let v = b2 * A[2u * n + i] + (1.0 - b2) * g * g;
    Y[i] = w - lr * (m / pf(7u)) / (sqrt(v / pf(8u)) + pf(4u));
    Y[n + i] = m;
    Y[2u * n + i] = v;
}

// ---------------------------------------------------------------- peaks
// Peak f32 throughput: eight independent multiply-add chains of P0 steps per invocation
// (16 flops a step). It writes only if the impossible happens, so nothing is elided.
// P: steps, m (below 1, so the chains settle).
@compute @workgroup_size(64)
fn peak_fma(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let m = pf(1u);
    var c = array<f32, 8>();
    for (var k = 0u; k < 8u; k = k + 1u) {
        c[k] = f32(index(id, nw) + k) * 1e-9;
    }
    for (var s = 0u; s < p(0u); s = s + 1u) {
        c[0] = c[0] * m + 0.5;
        c[1] = c[1] * m + 0.5;
        c[2] = c[2] * m + 0.5;
        c[3] = c[3] * m + 0.5;
        c[4] = c[4] * m + 0.5;
        c[5] = c[5] * m + 0.5;
        c[6] = c[6] * m + 0.5;
        c[7] = c[7] * m + 0.5;
    }
    let t = c[0] + c[1] + c[2] + c[3] + c[4] + c[5] + c[6] + c[7];
    if (t == -1.0) {
        Y[0] = t;
    }
}

// Peak read bandwidth: workgroup w sums its contiguous chunk [w * chunk, (w + 1) * chunk)
// of A below n, its 64 invocations side by side (coalesced on a GPU, sequential per
// thread on a CPU driver). P: n, chunk.
@compute @workgroup_size(64)
fn peak_read(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let start = wid.x * p(1u);
    let end = min(start + p(1u), p(0u));
    var s = 0.0;
    for (var j = start + lid.x; j < end; j = j + 64u) {
        s = s + A[j];
    }
    if (s == -1.0) {
        Y[0] = s;
    }
}
