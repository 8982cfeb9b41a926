//! The USE-m3 encoder: weights from `weights.npz` and the forward pass.
//!
//! Architecture (as in the reference numpy backend): each token's embedding
//! row (dequantised from `uint8`) is projected to three branches of width
//! `c` (one layer norm over all three), each branch is a two-layer residual
//! CNN over n-gram windows (orders 2, 3 and 5 with left context 0, 1 and 2,
//! zero-padded at the sentence bounds), the raw embedding and the three
//! branch outputs are concatenated and layer-normalised, averaged over the
//! tokens (as sum / sqrt(n) after an output projection, which commutes with
//! the sum), and a small feed-forward head with `tanh` gives the sentence
//! vector, scaled to unit length.
//!
//! All sizes come from the array shapes, so a tiny model with the same
//! array names runs through exactly this code.
//!
//! The embedding table stays quantised (`uint8`, one scale and offset per
//! chunk; piece `id` lives in chunk `id % chunks`, row `id / chunks`): 65 MB
//! instead of 262 MB of `f32`. Rows are dequantised when looked up.

use std::io::{Read, Seek};

use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2, Axis, Slice};

use super::npz::{Array, Data, Npz, NpzError};

/// N-gram order and left context of the three CNN branches; the array names
/// carry the order (`w1_2`, `w1_3`, `w1_5`).
const ORDERS: [(usize, usize); 3] = [(2, 0), (3, 1), (5, 2)];

/// Tokens per micro-batch: the tokens of several short texts are encoded as
/// one matrix so the weights are read once for all of them, while the
/// working set stays small (a longer text is a batch of its own).
const TOKEN_BUDGET: usize = 384;

struct Branch {
    order: usize,
    left: usize,
    w1: Array2<f32>,
    b1: Array1<f32>,
    w2: Array2<f32>,
    b2: Array1<f32>,
}

/// The loaded weights.
pub struct Weights {
    chunks: Vec<Vec<u8>>,
    rows_per_chunk: usize,
    emb_dim: usize,
    scale: Vec<f32>,
    lo: Vec<f32>,
    proj_w: Array2<f32>,
    proj_b: Array1<f32>,
    ln_g_all: Array1<f32>,
    ln_b_all: Array1<f32>,
    cnn_dim: usize,
    branches: Vec<Branch>,
    ln_g: Array1<f32>,
    ln_b: Array1<f32>,
    cnn_w: Array2<f32>,
    cnn_b: Array1<f32>,
    d0: Array2<f32>,
    d1: Array2<f32>,
    p1: Array2<f32>,
    d2: Array2<f32>,
    p3: Array2<f32>,
    d3: Array2<f32>,
    eps: f32,
}

impl std::fmt::Debug for Weights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Weights")
            .field("vocab_rows", &self.vocab_rows())
            .field("emb_dim", &self.emb_dim)
            .field("cnn_dim", &self.cnn_dim)
            .field("output_dim", &self.output_dim())
            .finish_non_exhaustive()
    }
}

/// A weights file that does not fit the architecture.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error(transparent)]
    Npz(#[from] NpzError),
    #[error("array {name:?} has shape {shape:?}, expected {expected}")]
    Shape {
        name: String,
        shape: Vec<usize>,
        expected: String,
    },
    #[error("array {0:?} has the wrong element type")]
    Dtype(String),
    #[error("no embedding table chunks (q1, q2, ...)")]
    NoTable,
}

fn shape_error(name: &str, array: &Array, expected: String) -> WeightsError {
    WeightsError::Shape {
        name: name.to_string(),
        shape: array.shape.clone(),
        expected,
    }
}

struct Loader<R: Read + Seek> {
    npz: Npz<R>,
}

impl<R: Read + Seek> Loader<R> {
    fn f32(&mut self, name: &str) -> Result<(Vec<usize>, Vec<f32>), WeightsError> {
        let array = self.npz.array(name)?;
        match array.data {
            Data::F32(v) => Ok((array.shape, v)),
            _ => Err(WeightsError::Dtype(name.to_string())),
        }
    }

    fn vector(&mut self, name: &str, len: Option<usize>) -> Result<Array1<f32>, WeightsError> {
        let (shape, data) = self.f32(name)?;
        match (shape.as_slice(), len) {
            ([n], Some(want)) if *n == want => Ok(Array1::from_vec(data)),
            ([_], None) => Ok(Array1::from_vec(data)),
            _ => Err(WeightsError::Shape {
                name: name.to_string(),
                shape,
                expected: format!("({},)", len.map_or("n".into(), |n| n.to_string())),
            }),
        }
    }

    /// A matrix; `rows`/`cols` are checked when given.
    fn matrix(
        &mut self,
        name: &str,
        rows: Option<usize>,
        cols: Option<usize>,
    ) -> Result<Array2<f32>, WeightsError> {
        let (shape, data) = self.f32(name)?;
        let fits = |want: Option<usize>, got: usize| want.is_none_or(|w| w == got) && got > 0;
        if let [r, c] = shape.as_slice() {
            if fits(rows, *r) && fits(cols, *c) {
                return Array2::from_shape_vec((*r, *c), data).map_err(|_| WeightsError::Shape {
                    name: name.to_string(),
                    shape: shape.clone(),
                    expected: "consistent data".into(),
                });
            }
        }
        let dim = |d: Option<usize>| d.map_or("n".to_string(), |n| n.to_string());
        Err(WeightsError::Shape {
            name: name.to_string(),
            shape,
            expected: format!("({}, {})", dim(rows), dim(cols)),
        })
    }
}

impl Weights {
    /// Reads and checks every array.
    pub fn read<R: Read + Seek>(reader: R) -> Result<Self, WeightsError> {
        let mut l = Loader {
            npz: Npz::new(reader)?,
        };
        let names = l.npz.names();
        let count = (1..)
            .take_while(|i| names.iter().any(|n| *n == format!("q{i}")))
            .count();
        if count == 0 {
            return Err(WeightsError::NoTable);
        }
        let mut chunks = Vec::with_capacity(count);
        let mut table_shape: Option<Vec<usize>> = None;
        for i in 1..=count {
            let name = format!("q{i}");
            let array = l.npz.array(&name)?;
            let ok = matches!(array.shape.as_slice(), [r, c] if *r > 0 && *c > 0)
                && table_shape.as_ref().is_none_or(|s| *s == array.shape);
            if !ok {
                let expected = table_shape
                    .as_ref()
                    .map_or("(rows, dim)".into(), |s| format!("{s:?} like q1"));
                return Err(shape_error(&name, &array, expected));
            }
            table_shape = Some(array.shape.clone());
            match array.data {
                Data::U8(v) => chunks.push(v),
                _ => return Err(WeightsError::Dtype(name)),
            }
        }
        let (rows_per_chunk, emb_dim) = match table_shape.as_deref() {
            Some([r, c]) => (*r, *c),
            _ => return Err(WeightsError::NoTable),
        };
        let scale = l.vector("scale", Some(count))?.to_vec();
        let lo = l.vector("lo", Some(count))?.to_vec();

        let mut proj = Vec::new();
        let mut branches = Vec::new();
        let mut ln_parts = (Vec::new(), Vec::new(), Vec::new());
        let mut cnn_dim = None;
        for (order, left) in ORDERS {
            let p = l.matrix(&format!("proj{order}"), Some(emb_dim), cnn_dim)?;
            let c = p.ncols();
            cnn_dim = Some(c);
            proj.push(p);
            ln_parts
                .0
                .extend(l.vector(&format!("proj_b{order}"), Some(c))?);
            ln_parts
                .1
                .extend(l.vector(&format!("ln_g{order}"), Some(c))?);
            ln_parts
                .2
                .extend(l.vector(&format!("ln_b{order}"), Some(c))?);
            branches.push(Branch {
                order,
                left,
                w1: l.matrix(&format!("w1_{order}"), Some(order * c), Some(c))?,
                b1: l.vector(&format!("b1_{order}"), Some(c))?,
                w2: l.matrix(&format!("w2_{order}"), Some(order * c), Some(c))?,
                b2: l.vector(&format!("b2_{order}"), Some(c))?,
            });
        }
        let cnn_dim = cnn_dim.unwrap_or(0);
        let views: Vec<_> = proj.iter().map(|p| p.view()).collect();
        let proj_w = ndarray::concatenate(Axis(1), &views).map_err(|_| WeightsError::Shape {
            name: "proj2".into(),
            shape: vec![emb_dim, cnn_dim],
            expected: "equal projections".into(),
        })?;
        let feat = emb_dim + ORDERS.len() * cnn_dim;
        let ln_g = l.vector("ln_g", Some(feat))?;
        let ln_b = l.vector("ln_b", Some(feat))?;
        let cnn_w = l.matrix("cnn_W", Some(feat), None)?;
        let hidden = cnn_w.ncols();
        let cnn_b = l.vector("cnn_b", Some(hidden))?;
        let d0 = l.matrix("d0", Some(hidden), None)?;
        let p1 = l.matrix("p1", Some(hidden), None)?;
        let d1 = l.matrix("d1", Some(d0.ncols()), Some(p1.ncols()))?;
        let d2 = l.matrix("d2", Some(p1.ncols()), None)?;
        let p3 = l.matrix("p3", Some(p1.ncols()), None)?;
        let d3 = l.matrix("d3", Some(d2.ncols()), Some(p3.ncols()))?;
        let eps = match l.npz.array("eps")? {
            Array {
                data: Data::F64(v), ..
            } if v.len() == 1 => v[0] as f32,
            Array {
                data: Data::F32(v), ..
            } if v.len() == 1 => v[0],
            _ => return Err(WeightsError::Dtype("eps".into())),
        };
        Ok(Self {
            chunks,
            rows_per_chunk,
            emb_dim,
            scale,
            lo,
            proj_w,
            proj_b: Array1::from_vec(ln_parts.0),
            ln_g_all: Array1::from_vec(ln_parts.1),
            ln_b_all: Array1::from_vec(ln_parts.2),
            cnn_dim,
            branches,
            ln_g,
            ln_b,
            cnn_w,
            cnn_b,
            d0,
            d1,
            p1,
            d2,
            p3,
            d3,
            eps,
        })
    }

    /// Number of piece ids the table covers.
    pub fn vocab_rows(&self) -> usize {
        self.chunks.len() * self.rows_per_chunk
    }

    /// Length of the sentence vectors.
    pub fn output_dim(&self) -> usize {
        self.d3.ncols()
    }

    /// Embeds each text (given as piece ids with `<s>`/`</s>`, every id below
    /// [`vocab_rows`](Self::vocab_rows), none empty) into `out`, one unit
    /// vector per text.
    pub fn encode(&self, texts: &[Vec<u32>], out: &mut Vec<Vec<f32>>) {
        let mut group: Vec<&[u32]> = Vec::new();
        let mut tokens = 0;
        for ids in texts {
            if !group.is_empty() && tokens + ids.len() > TOKEN_BUDGET {
                self.encode_batch(&group, tokens, out);
                group.clear();
                tokens = 0;
            }
            group.push(ids);
            tokens += ids.len();
        }
        if !group.is_empty() {
            self.encode_batch(&group, tokens, out);
        }
    }

    fn encode_batch(&self, group: &[&[u32]], n_tokens: usize, out: &mut Vec<Vec<f32>>) {
        let emb_dim = self.emb_dim;
        let c = self.cnn_dim;
        let feat_dim = emb_dim + self.branches.len() * c;
        // feats = [embedding | branch 2 | branch 3 | branch 5] per token.
        let mut feats = Array2::<f32>::zeros((n_tokens, feat_dim));
        let mut sentence_of = Vec::with_capacity(n_tokens);
        let mut bounds = Vec::with_capacity(group.len());
        let mut t = 0;
        for (s, ids) in group.iter().enumerate() {
            bounds.push((t, t + ids.len()));
            for &id in ids.iter() {
                let id = id as usize;
                let chunk = id % self.chunks.len();
                let row = id / self.chunks.len();
                let (scale, lo) = (self.scale[chunk], self.lo[chunk]);
                let src = self.chunks[chunk]
                    .get(row * emb_dim..(row + 1) * emb_dim)
                    .unwrap_or_default();
                let mut dst = feats.row_mut(t);
                for (d, &q) in dst.iter_mut().zip(src) {
                    *d = f32::from(q) * scale + lo;
                }
                sentence_of.push(s);
                t += 1;
            }
        }

        let emb = feats.slice_axis(Axis(1), Slice::from(..emb_dim));
        let mut x = Array2::<f32>::zeros((n_tokens, self.proj_w.ncols()));
        matmul(&emb, &self.proj_w, false, &mut x);
        x += &self.proj_b;
        layer_norm(x.view_mut(), &self.ln_g_all, &self.ln_b_all, self.eps);

        let max_order = self.branches.iter().map(|b| b.order).max().unwrap_or(1);
        let mut windows = Array2::<f32>::zeros((n_tokens, max_order * c));
        let mut h = Array2::<f32>::zeros((n_tokens, c));
        let mut c2 = Array2::<f32>::zeros((n_tokens, c));
        for (i, branch) in self.branches.iter().enumerate() {
            let xs = x.slice_axis(Axis(1), Slice::from(i * c..(i + 1) * c));
            let width = branch.order * c;
            gather(&xs, branch, &bounds, &sentence_of, &mut windows);
            let win = windows.slice_axis(Axis(1), Slice::from(..width));
            matmul(&win, &branch.w1, false, &mut h);
            h += &branch.b1;
            h.mapv_inplace(|v| v.max(0.0));
            h += &xs;
            gather(&h.view(), branch, &bounds, &sentence_of, &mut windows);
            let win = windows.slice_axis(Axis(1), Slice::from(..width));
            matmul(&win, &branch.w2, false, &mut c2);
            c2 += &branch.b2;
            c2.mapv_inplace(|v| v.max(0.0));
            c2 += &h;
            let off = emb_dim + i * c;
            feats
                .slice_axis_mut(Axis(1), Slice::from(off..off + c))
                .assign(&c2);
        }
        layer_norm(feats.view_mut(), &self.ln_g, &self.ln_b, self.eps);

        let mut sums = Array2::<f32>::zeros((group.len(), feat_dim));
        for (s, &(start, end)) in bounds.iter().enumerate() {
            let mut row = sums.row_mut(s);
            for t in start..end {
                row += &feats.row(t);
            }
        }
        let mut mean = Array2::<f32>::zeros((group.len(), self.cnn_w.ncols()));
        matmul(&sums.view(), &self.cnn_w, false, &mut mean);
        for (s, &(start, end)) in bounds.iter().enumerate() {
            let len = (end - start) as f32;
            let mut row = mean.row_mut(s);
            row.scaled_add(len, &self.cnn_b);
            row *= 1.0 / len.sqrt();
        }

        let rows = group.len();
        let mut y0 = Array2::<f32>::zeros((rows, self.d0.ncols()));
        matmul(&mean.view(), &self.d0, false, &mut y0);
        y0.mapv_inplace(|v| v.max(0.0));
        let mut y1 = Array2::<f32>::zeros((rows, self.p1.ncols()));
        matmul(&mean.view(), &self.p1, false, &mut y1);
        matmul(&y0.view(), &self.d1, true, &mut y1);
        y1.mapv_inplace(|v| v.max(0.0));
        let mut y2 = Array2::<f32>::zeros((rows, self.d2.ncols()));
        matmul(&y1.view(), &self.d2, false, &mut y2);
        y2.mapv_inplace(|v| v.max(0.0));
        let mut z = Array2::<f32>::zeros((rows, self.p3.ncols()));
        matmul(&y1.view(), &self.p3, false, &mut z);
        matmul(&y2.view(), &self.d3, true, &mut z);
        z.mapv_inplace(f32::tanh);
        for row in z.rows() {
            let norm2: f32 = row.iter().map(|v| v * v).sum();
            let inv = 1.0 / norm2.max(self.eps).sqrt();
            out.push(row.iter().map(|v| v * inv).collect());
        }
    }
}

/// Fills the first `order * c` columns of `windows`: row t is the rows
/// t - left ..= t - left + order - 1 of `xs`, each zero when it falls outside
/// t's own text.
fn gather(
    xs: &ArrayView2<'_, f32>,
    branch: &Branch,
    bounds: &[(usize, usize)],
    sentence_of: &[usize],
    windows: &mut Array2<f32>,
) {
    let c = xs.ncols();
    for (t, &s) in sentence_of.iter().enumerate() {
        let (start, end) = bounds[s];
        let mut row = windows.row_mut(t);
        for j in 0..branch.order {
            let mut slot = row.slice_axis_mut(Axis(0), Slice::from(j * c..(j + 1) * c));
            match (t + j).checked_sub(branch.left) {
                Some(src) if src >= start && src < end => slot.assign(&xs.row(src)),
                _ => slot.fill(0.0),
            }
        }
    }
}

/// Up to this many rows, [`matmul`] streams the weights row by row
/// instead of calling the GEMM, which packs (copies) the whole weight matrix
/// on every call: for a short query that copy costs more than the product.
const SMALL_ROWS: usize = 24;

/// `out = a · b` (or `out += a · b` with `accumulate`).
fn matmul(a: &ArrayView2<'_, f32>, b: &Array2<f32>, accumulate: bool, out: &mut Array2<f32>) {
    let small = a.nrows() <= SMALL_ROWS;
    let (n, k) = (b.ncols(), b.nrows());
    if let (true, Some(weights), Some(dst)) = (small, b.as_slice(), out.as_slice_mut()) {
        if !accumulate {
            dst.fill(0.0);
        }
        // Blocks of weight rows that stay in L2 while every row of `a` uses
        // them; four weight rows per pass over the accumulator row, so it is
        // loaded and stored once per four multiply-adds.
        const BLOCK: usize = 64;
        for k0 in (0..k).step_by(BLOCK) {
            let k1 = (k0 + BLOCK).min(k);
            for (i, row) in a.rows().into_iter().enumerate() {
                let acc = &mut dst[i * n..(i + 1) * n];
                let mut kk = k0;
                while kk + 4 <= k1 {
                    let (a0, a1, a2, a3) = (row[kk], row[kk + 1], row[kk + 2], row[kk + 3]);
                    let w = &weights[kk * n..(kk + 4) * n];
                    let (w0, rest) = w.split_at(n);
                    let (w1, rest) = rest.split_at(n);
                    let (w2, w3) = rest.split_at(n);
                    for ((((o, &x0), &x1), &x2), &x3) in
                        acc.iter_mut().zip(w0).zip(w1).zip(w2).zip(w3)
                    {
                        *o += a0 * x0 + a1 * x1 + a2 * x2 + a3 * x3;
                    }
                    kk += 4;
                }
                for kk in kk..k1 {
                    let av = row[kk];
                    let w = &weights[kk * n..(kk + 1) * n];
                    for (o, &wv) in acc.iter_mut().zip(w) {
                        *o += av * wv;
                    }
                }
            }
        }
        return;
    }
    general_mat_mul(1.0, a, b, if accumulate { 1.0 } else { 0.0 }, out);
}

/// Layer norm over each row, in place.
fn layer_norm(mut x: ArrayViewMut2<'_, f32>, gamma: &Array1<f32>, beta: &Array1<f32>, eps: f32) {
    let n = x.ncols() as f32;
    for mut row in x.rows_mut() {
        let mean = row.sum() / n;
        row -= mean;
        let var = row.iter().map(|v| v * v).sum::<f32>() / n;
        row *= 1.0 / (var + eps).sqrt();
        row *= gamma;
        row += beta;
    }
}
