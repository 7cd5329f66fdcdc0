//! bf16 × bf16 → f32 matrix products on AVX512-BF16's `vdpbf16ps`, the hardware form of the
//! mixed-precision rule "evaluate in 16 bits, accumulate in 32" (Mixed precision training,
//! Micikevicius et al.; Intel's BF16 whitepaper for the instruction).
//!
//! `vdpbf16ps` adds to each f32 lane the two products of a pair of bf16 values: with A's pairs
//! (A[i, 2p], A[i, 2p+1]) broadcast and B packed so that lane j holds (B[2p, j], B[2p+1, j]), a
//! 16-lane register gets 2 × 16 multiply-adds per instruction, twice an f32 FMA's. The product
//! is the BLIS scheme: B packed a block of [`KC`] rows at a time into panels of [`NR`] columns,
//! A into panels of [`MR`] rows, and an MR × NR micro-kernel holding its tile of C in 28
//! registers. Packing rounds the f32 operands to bf16 (to nearest even), so values that are
//! already bf16 — every operand the 16-bit network and trace kernels pass — multiply exactly and
//! the result differs from the f32 product only in summation order. The instruction treats
//! subnormal bf16 inputs as zero and flushes subnormal results (below 1.2·10⁻³⁸).
//!
//! Picked at run time where the CPU has AVX512-BF16 (`is_x86_feature_detected`); elsewhere, and
//! when [`set_hardware_bf16`]`(false)` or `CONTINUUM_BF16=portable` asks for it, the callers take
//! the f32 product of the same values.

use super::dense::Mat;
use super::Switch;

/// Rows of C per micro-kernel call.
const MR: usize = 14;
/// Columns of C per micro-kernel call: two 16-lane registers.
const NR: usize = 32;
/// Rows of B (and columns of A) per packed block; a B panel (KC × NR bf16, 16 KiB) stays in L1.
const KC: usize = 256;
/// Rows of A per packed block (a multiple of MR): 252 × 256 bf16 = 126 KiB, in L2.
const MC: usize = 252;

static HARDWARE: Switch = Switch::new("CONTINUUM_BF16", "portable");

/// Whether the bf16 products run on AVX512-BF16: the CPU has it, and neither
/// `CONTINUUM_BF16=portable` nor [`set_hardware_bf16`]`(false)` switched it off.
pub fn hardware_bf16() -> bool {
    HARDWARE.get(cpu_has_bf16)
}

/// Turns the AVX512-BF16 products on (where the CPU has them; returns whether they are on now)
/// or off (the portable f32 product of the same bf16 values).
pub fn set_hardware_bf16(on: bool) -> bool {
    HARDWARE.set(on && cpu_has_bf16())
}

/// Which path a bf16 matrix product takes on this machine, for reports.
pub fn bf16_product_path() -> &'static str {
    if hardware_bf16() {
        "AVX512-BF16 vdpbf16ps (bf16 products, f32 accumulation)"
    } else {
        "f32 products of the bf16 values (gemm crate)"
    }
}

fn cpu_has_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        has!("avx512f") && has!("avx512bw") && has!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A right-hand operand B (k × n) rounded to bf16 and packed for [`product`]: block by block of
/// [`KC`] rows, each as panels of [`NR`] columns whose slots hold the pairs (B[2p, j], B[2p+1, j])
/// (A is packed as it goes, in panels of [`MR`] rows: for each pair, its rows' pairs in turn).
/// Packed once, it serves any number of products (every chunk of a batch, every thread).
pub(super) struct PackedColumns {
    k: usize,
    n: usize,
    blocks: Vec<Vec<u32>>,
}

impl PackedColumns {
    /// `rhs` packed, or `None` where the hardware path is off.
    pub(super) fn new(rhs: Mat<f32>) -> Option<Self> {
        if !hardware_bf16() {
            return None;
        }
        #[cfg(target_arch = "x86_64")]
        {
            let blocks = (0..rhs.rows)
                .step_by(KC)
                .map(|k0| {
                    let mut block = Vec::new();
                    // SAFETY: hardware_bf16() checked the CPU's AVX512F/BW and AVX512-BF16
                    unsafe { x86::pack_columns(rhs, k0..(k0 + KC).min(rhs.rows), &mut block) };
                    block
                })
                .collect();
            Some(Self { k: rhs.rows, n: rhs.cols, blocks })
        }
        #[cfg(not(target_arch = "x86_64"))]
        None
    }
}

/// dst = lhs · rhs (dst += lhs · rhs when `accumulate`), dst row-major (lhs.rows × rhs.n), with
/// lhs rounded to bf16 as it is packed and f32 accumulation; single-threaded.
///
/// # Safety
/// `dst` must be valid for lhs.rows × rhs.n writes (and reads when `accumulate`) and alias
/// neither operand; lhs must lie inside its data. The inner dimension must not be 0 (the caller
/// handles the empty product).
pub(super) unsafe fn product(dst: *mut f32, lhs: Mat<f32>, rhs: &PackedColumns, accumulate: bool) {
    assert!(lhs.cols == rhs.k && rhs.k > 0, "bf16 product: inner dimensions {} and {}", lhs.cols, rhs.k);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a PackedColumns exists only where hardware_bf16() found AVX512F/BW and
    // AVX512-BF16; the caller vouches for dst
    x86::product(dst, lhs, rhs, accumulate);
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Mat, PackedColumns, KC, MC, MR, NR};
    use crate::kernels::dense::bf16_bits;
    use std::arch::x86_64::*;
    use std::cell::RefCell;
    use std::ops::Range;

    thread_local! {
        /// This thread's packed block of A, reused across calls.
        static PACKED_ROWS: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
    }

    /// See [`super::product`]; the caller guarantees AVX512F/BW and AVX512-BF16.
    pub(super) unsafe fn product(dst: *mut f32, lhs: Mat<f32>, rhs: &PackedColumns, accumulate: bool) {
        let (m, n, k) = (lhs.rows, rhs.n, rhs.k);
        PACKED_ROWS.with_borrow_mut(|a_pack| {
            for (block, b_pack) in rhs.blocks.iter().enumerate() {
                let ks = block * KC..((block + 1) * KC).min(k);
                let pairs = ks.len().div_ceil(2);
                let load_c = accumulate || block > 0;
                for i0 in (0..m).step_by(MC) {
                    let rows = i0..(i0 + MC).min(m);
                    pack_rows(lhs, rows.clone(), ks.clone(), a_pack);
                    for (q, b_panel) in b_pack.chunks_exact(pairs * NR).enumerate() {
                        let j0 = q * NR;
                        let cols = NR.min(n - j0);
                        for (r, a_panel) in a_pack[..rows.len().div_ceil(MR) * pairs * MR].chunks_exact(pairs * MR).enumerate() {
                            let i = rows.start + r * MR;
                            let tile_rows = MR.min(rows.end - i);
                            // SAFETY: the tile (i.., j0..) of tile_rows × cols lies inside dst
                            // (m × n, row-major); the panels hold `pairs` pairs each
                            micro(pairs, a_panel.as_ptr(), b_panel.as_ptr(), dst.add(i * n + j0), n, tile_rows, cols, load_c);
                        }
                    }
                }
            }
        });
    }

    /// C[..rows, ..cols] (+)= A_panel · B_panel over `pairs` k-pairs, C at `c` with row stride
    /// `ldc`: the MR × NR tile accumulates in 28 registers.
    #[target_feature(enable = "avx512f,avx512bf16")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn micro(pairs: usize, a: *const u32, b: *const u32, c: *mut f32, ldc: usize, rows: usize, cols: usize, load_c: bool) {
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        for p in 0..pairs {
            let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(p * NR) as *const _));
            let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(p * NR + 16) as *const _));
            for (r, acc) in acc.iter_mut().enumerate() {
                let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(*a.add(p * MR + r) as i32));
                acc[0] = _mm512_dpbf16_ps(acc[0], av, b0);
                acc[1] = _mm512_dpbf16_ps(acc[1], av, b1);
            }
        }
        let mask = |from: usize| -> __mmask16 {
            let w = cols.saturating_sub(from).min(16);
            ((1u32 << w) - 1) as __mmask16
        };
        let (m0, m1) = (mask(0), mask(16));
        for (r, acc) in acc.iter().enumerate().take(rows) {
            let row = c.add(r * ldc);
            let (mut v0, mut v1) = (acc[0], acc[1]);
            if load_c {
                v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, row));
                v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, row.wrapping_add(16)));
            }
            _mm512_mask_storeu_ps(row, m0, v0);
            // a masked-off lane is neither read nor written (AVX-512 suppresses its faults)
            _mm512_mask_storeu_ps(row.wrapping_add(16), m1, v1);
        }
    }

    /// The low `n` lanes of a 16-lane mask.
    fn lanes(n: usize) -> __mmask16 {
        ((1u32 << n.min(16)) - 1) as __mmask16
    }

    /// 16 bf16 pairs (x[2t], x[2t+1]) from the `n` (≤ 32) f32s at `x`, rounded to nearest
    /// even; lanes past `n` are 0.
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn adjacent_pairs(x: *const f32, n: usize) -> __m512i {
        let lo = _mm512_maskz_loadu_ps(lanes(n), x);
        let hi = _mm512_maskz_loadu_ps(lanes(n.saturating_sub(16)), x.wrapping_add(16));
        // the low half of the result from `lo`: element 2t, 2t+1 of the 32 are pair t
        std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo))
    }

    /// 16 bf16 pairs (x[t], y[t]) from the first `n` (≤ 16) f32s of two rows (`y` null: 0).
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    unsafe fn interleaved_pairs(x: *const f32, y: *const f32, n: usize) -> __m512i {
        let lo = _mm512_maskz_loadu_ps(lanes(n), x);
        let hi = if y.is_null() { _mm512_setzero_ps() } else { _mm512_maskz_loadu_ps(lanes(n), y) };
        let both: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
        // 16-bit element t of x sits at t, of y at 16 + t: take them in turn
        let order = _mm512_set_epi16(
            31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0,
        );
        _mm512_permutexvar_epi16(order, both)
    }

    /// Element (i, j) of a view as a pointer (wrapping: masked loads may name lanes past the
    /// data, which they do not read).
    fn at(v: Mat<f32>, i: usize, j: usize) -> *const f32 {
        v.data.as_ptr().wrapping_add(i * v.rs + j * v.cs)
    }

    /// Transposes a 16 × 16 block of 32-bit elements held as 16 rows.
    #[target_feature(enable = "avx512f")]
    fn transpose16(r: &mut [__m512i; 16]) {
        let mut t = [_mm512_setzero_si512(); 16];
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
        }
        for i in 0..4 {
            r[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
            r[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
            r[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
            r[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
        }
        for i in 0..2 {
            for j in 0..4 {
                t[8 * i + j] = _mm512_shuffle_i32x4::<0x88>(r[8 * i + j], r[8 * i + j + 4]);
                t[8 * i + j + 4] = _mm512_shuffle_i32x4::<0xdd>(r[8 * i + j], r[8 * i + j + 4]);
            }
        }
        for j in 0..8 {
            r[j] = _mm512_shuffle_i32x4::<0x88>(t[j], t[j + 8]);
            r[j + 8] = _mm512_shuffle_i32x4::<0xdd>(t[j], t[j + 8]);
        }
    }

    /// Packs rows `rows` × k-range `ks` of `a` as panels of MR rows: panel q holds, for each
    /// pair p of the k-range, the MR pairs (A[i, 2p], A[i, 2p+1]) of its rows; rows past the end
    /// and an odd k's last partner are 0. Every slot is written.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    unsafe fn pack_rows(a: Mat<f32>, rows: Range<usize>, ks: Range<usize>, out: &mut Vec<u32>) {
        let pairs = ks.len().div_ceil(2);
        let panels = rows.len().div_ceil(MR);
        if out.len() < panels * pairs * MR + 16 {
            out.resize(panels * pairs * MR + 16, 0); // slack: the last store writes 16 lanes
        }
        let base = out.as_mut_ptr();
        for q in 0..panels {
            let first = rows.start + q * MR;
            let valid = MR.min(rows.end - first);
            let panel = base.add(q * pairs * MR);
            if a.cs == 1 {
                // a row's pairs are adjacent: 16 pairs of the panel's rows, transposed so that
                // each pair's MR rows are adjacent
                let mut block = [_mm512_setzero_si512(); 16];
                for p0 in (0..pairs).step_by(16) {
                    for (r, v) in block.iter_mut().enumerate() {
                        *v = if r < valid {
                            adjacent_pairs(at(a, first + r, ks.start + 2 * p0), ks.len() - 2 * p0)
                        } else {
                            _mm512_setzero_si512()
                        };
                    }
                    transpose16(&mut block);
                    for (t, v) in block.iter().enumerate().take(pairs - p0) {
                        // lanes past MR land in the next slot, rewritten in turn (or the slack)
                        _mm512_storeu_si512(panel.add((p0 + t) * MR).cast(), *v);
                    }
                }
            } else if a.rs == 1 {
                // column k of A is contiguous: the panel's rows of columns 2p and 2p + 1 in turn
                for p in 0..pairs {
                    let k = ks.start + 2 * p;
                    let y = if k + 1 < ks.end { at(a, first, k + 1) } else { std::ptr::null() };
                    _mm512_storeu_si512(panel.add(p * MR).cast(), interleaved_pairs(at(a, first, k), y, valid));
                }
            } else {
                for p in 0..pairs {
                    let k = ks.start + 2 * p;
                    for r in 0..MR {
                        let i = first + r;
                        let (lo, hi) = match (r < valid, k + 1 < ks.end) {
                            (false, _) => (0.0, 0.0),
                            (true, false) => (*at(a, i, k), 0.0),
                            (true, true) => (*at(a, i, k), *at(a, i, k + 1)),
                        };
                        *panel.add(p * MR + r) = scalar_pair(lo, hi);
                    }
                }
            }
        }
    }

    /// Packs k-range `ks` × all columns of `b` as panels of NR columns: panel q holds, for each
    /// pair p, the NR pairs (B[2p, j], B[2p+1, j]) of its columns, zero past the edges.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub(super) unsafe fn pack_columns(b: Mat<f32>, ks: Range<usize>, out: &mut Vec<u32>) {
        let pairs = ks.len().div_ceil(2);
        let panels = b.cols.div_ceil(NR);
        // every slot is written below: no zero-fill first
        out.clear();
        out.reserve_exact(panels * pairs * NR);
        let base = out.as_mut_ptr();
        for q in 0..panels {
            let cols = q * NR..((q + 1) * NR).min(b.cols);
            let panel = base.add(q * pairs * NR);
            if b.cs == 1 {
                // rows 2p and 2p + 1 of B, read along, interleaved 16 columns at a time (lanes
                // past the edge are 0, so every slot is written)
                for p in 0..pairs {
                    let k = ks.start + 2 * p;
                    for c0 in (0..NR).step_by(16) {
                        let y = if k + 1 < ks.end { at(b, k + 1, cols.start + c0) } else { std::ptr::null() };
                        let v = interleaved_pairs(at(b, k, cols.start + c0), y, cols.len().saturating_sub(c0));
                        _mm512_storeu_si512(panel.add(p * NR + c0).cast(), v);
                    }
                }
            } else if b.rs == 1 {
                // columns of B are contiguous along k: 16 pairs of 16 columns, transposed
                let mut block = [_mm512_setzero_si512(); 16];
                for c0 in (0..NR).step_by(16) {
                    for p0 in (0..pairs).step_by(16) {
                        for (c, v) in block.iter_mut().enumerate() {
                            *v = if c0 + c < cols.len() {
                                adjacent_pairs(at(b, ks.start + 2 * p0, cols.start + c0 + c), ks.len() - 2 * p0)
                            } else {
                                _mm512_setzero_si512()
                            };
                        }
                        transpose16(&mut block);
                        for (t, v) in block.iter().enumerate().take(pairs - p0) {
                            _mm512_storeu_si512(panel.add((p0 + t) * NR + c0).cast(), *v);
                        }
                    }
                }
            } else {
                for p in 0..pairs {
                    let k = ks.start + 2 * p;
                    for c in 0..NR {
                        let j = cols.start + c;
                        let (lo, hi) = match (j < cols.end, k + 1 < ks.end) {
                            (false, _) => (0.0, 0.0),
                            (true, false) => (*at(b, k, j), 0.0),
                            (true, true) => (*at(b, k, j), *at(b, k + 1, j)),
                        };
                        *panel.add(p * NR + c) = scalar_pair(lo, hi);
                    }
                }
            }
        }
        out.set_len(panels * pairs * NR);
    }

    /// Two f32s as a bf16 pair, rounded to nearest even (`lo` in the low half).
    fn scalar_pair(lo: f32, hi: f32) -> u32 {
        u32::from(bf16_bits(lo)) | (u32::from(bf16_bits(hi)) << 16)
    }
}

#[cfg(test)]
mod tests {
    use super::{hardware_bf16, product, Mat, PackedColumns};

    /// Values exact in bf16 (8 significant bits), from a fixed sequence.
    fn bf16_values(n: usize, seed: u32) -> Vec<f32> {
        (0..n as u32).map(|i| ((i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 24) as f32 - 128.0) / 16.0).collect()
    }

    /// The packed product against an f64 reference on odd shapes crossing the KC and MC blocks,
    /// with each operand row-major, transposed (column-contiguous) or every-other-element strided
    /// (the scalar packing), overwriting and accumulating: within f32 summation error.
    #[test]
    fn packed_product_matches_f64_on_every_layout() {
        if !hardware_bf16() {
            eprintln!("no AVX512-BF16 here: the portable path is tested through kernels::matmul");
            return;
        }
        for (m, k, n) in [(1, 1, 1), (13, 3, 17), (250, 515, 33), (17, 31, 70)] {
            // layout 0: row-major, 1: transposed, 2: strided by 2 in both directions
            for (la, lb) in [(0, 0), (1, 1), (2, 2), (0, 1), (1, 2), (2, 0)] {
                let strides = |rows: usize, cols: usize, layout: u8| match layout {
                    0 => (cols, 1),
                    1 => (1, rows),
                    _ => (4 * cols, 2),
                };
                let (a_data, b_data) = (bf16_values(4 * m * k, 7), bf16_values(4 * k * n, 11));
                let ((ars, acs), (brs, bcs)) = (strides(m, k, la), strides(k, n, lb));
                let a = Mat { data: &a_data, rows: m, cols: k, rs: ars, cs: acs };
                let b = Mat { data: &b_data, rows: k, cols: n, rs: brs, cs: bcs };
                let start = bf16_values(m * n, 3);
                for accumulate in [false, true] {
                    let mut c = start.clone();
                    let packed = PackedColumns::new(b).expect("hardware path on");
                    // SAFETY: c holds m × n elements and aliases neither operand
                    unsafe { product(c.as_mut_ptr(), a, &packed, accumulate) };
                    for i in 0..m {
                        for j in 0..n {
                            let (mut exact, mut size) = (if accumulate { start[i * n + j] as f64 } else { 0.0 }, 0.0);
                            for p in 0..k {
                                let term = a.data[i * ars + p * acs] as f64 * b.data[p * brs + j * bcs] as f64;
                                exact += term;
                                size += term.abs();
                            }
                            let got = c[i * n + j] as f64;
                            let bound = (k + 1) as f64 * 2f64.powi(-24) * (size + exact.abs());
                            assert!(
                                (got - exact).abs() <= bound,
                                "({m}, {k}, {n}) layouts {la}/{lb} accumulate {accumulate}: c[{i}, {j}] = {got}, exact {exact}"
                            );
                        }
                    }
                }
            }
        }
    }
}
