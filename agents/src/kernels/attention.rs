//! What the two attention kernels (the Feedback Transformer's, [`super::feedback`], and the
//! standard Transformer's, [`super::transformer`]) share: the trunk's sizes, the sizes a
//! block's passes work with, a block's inputs, the fused sequence operation's description and
//! the joining of its blocks' gradients.

use super::common::{Params, add_into, map_saved_blocks, row_blocks};
use super::{ROWS_PER_BLOCK, pool};

/// Sizes every attention trunk has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TrunkDims {
    /// Width `d`.
    pub d: usize,
    /// Attention heads `H`.
    pub heads: usize,
    /// Layers `L`.
    pub layers: usize,
    /// Feed-forward width.
    pub ff: usize,
    /// Span `τ`.
    pub span: usize,
}

/// The sizes a block's passes work with: the trunk's, the block's, and what follows from them.
#[derive(Clone, Copy)]
pub(crate) struct Sizes {
    pub(crate) d: usize,
    pub(crate) heads: usize,
    pub(crate) layers: usize,
    pub(crate) ff: usize,
    pub(crate) span: usize,
    pub(crate) rows: usize,
    pub(crate) steps: usize,
    /// `rows × steps`: the rows of a product over the whole block.
    pub(crate) n: usize,
    /// Width of a head.
    pub(crate) dh: usize,
    /// History per row: the `τ` steps before the block plus one per step.
    pub(crate) hist: usize,
    /// Attention slots of a query: the `τ` steps before it and its own.
    pub(crate) slots: usize,
    /// `1/√dh`.
    pub(crate) scale: f32,
}

impl Sizes {
    /// The sizes of a block of `rows` rows and `steps` steps.
    pub(crate) fn new(dims: &TrunkDims, rows: usize, steps: usize) -> Self {
        let dh = dims.d / dims.heads;
        Self {
            d: dims.d,
            heads: dims.heads,
            layers: dims.layers,
            ff: dims.ff,
            span: dims.span,
            rows,
            steps,
            n: rows * steps,
            dh,
            hist: dims.span + steps,
            slots: dims.span + 1,
            scale: 1.0 / (dh as f32).sqrt(),
        }
    }
}

/// What every stage of a block's passes reads: the sizes, the model's dims, the layout and the
/// parameters.
pub(crate) struct Ctx<'a, D, L> {
    pub(crate) sz: Sizes,
    pub(crate) dims: &'a D,
    pub(crate) at: &'a L,
    pub(crate) p: &'a Params<'a>,
}

impl<'a, D: AsRef<TrunkDims>, L> Ctx<'a, D, L> {
    /// The context of a block of `rows` rows and `steps` steps.
    pub(crate) fn new(
        dims: &'a D,
        at: &'a L,
        p: &'a Params<'a>,
        (rows, steps): (usize, usize),
    ) -> Self {
        Self {
            sz: Sizes::new(dims.as_ref(), rows, steps),
            dims,
            at,
            p,
        }
    }
}

/// The inputs of a block of rows that are not parameters; `W` is what the block's window
/// starts from (memory vectors, cached keys and values).
pub(crate) struct BlockInput<'a, W> {
    pub(crate) rows: usize,
    pub(crate) steps: usize,
    /// `[rows, T, d]`.
    pub(crate) x0: &'a [f32],
    /// `[rows, T]`, 1.0 where an episode starts.
    pub(crate) starts: &'a [f32],
    /// `[rows, τ]`, 1.0 where a slot of the starting window belongs to the current episode.
    pub(crate) valid0: &'a [f32],
    /// The starting window of the block's rows.
    pub(crate) window: W,
}

impl<'a, W> BlockInput<'a, W> {
    /// Rows `b0..b0 + rows` of a batch's `x0 [B, T, d]`, `starts [B, T]` and
    /// `valid0 [B, τ]` (`T = steps`), with the starting window of those rows.
    pub(crate) fn rows_of(
        dims: &TrunkDims,
        steps: usize,
        (x0, starts, valid0): (&'a [f32], &'a [f32], &'a [f32]),
        (b0, rows): (usize, usize),
        window: W,
    ) -> Self {
        let (d, span) = (dims.d, dims.span);
        Self {
            rows,
            steps,
            x0: &x0[b0 * steps * d..(b0 + rows) * steps * d],
            starts: &starts[b0 * steps..(b0 + rows) * steps],
            valid0: &valid0[b0 * span..(b0 + rows) * span],
            window,
        }
    }

    /// The first history index each row may attend to at each step, `[rows][T]` into
    /// `floor`: `τ + t` of the last step `t` so far that started an episode of the row, 0
    /// where none has.
    pub(crate) fn episode_floors(&self, span: usize, floor: &mut [usize]) {
        let steps = self.steps;
        for r in 0..self.rows {
            let mut first = 0;
            for t in 0..steps {
                if self.starts[r * steps + t] > 0.5 {
                    first = span + t;
                }
                floor[r * steps + t] = first;
            }
        }
    }
}

/// A fused sequence operation of an attention trunk: inputs `[params, x0 [B,T,d], window]`,
/// output the last layer's outputs `[B, T, d]`.
#[derive(Debug)]
pub(crate) struct Sequence<D, L> {
    pub dims: D,
    pub layout: L,
    pub batch: usize,
    pub steps: usize,
    /// `[B, T]`.
    pub starts: Vec<f32>,
    /// `[B, τ]`.
    pub valid0: Vec<f32>,
}

/// Gradients of one block: every parameter `[Layout::len]`, the inputs `[rows, T, d]` and
/// the starting window (empty unless asked for).
pub(crate) struct BlockGrads {
    pub(crate) params: Vec<f32>,
    pub(crate) x0: Vec<f32>,
    pub(crate) window: Vec<f32>,
}

impl<D: AsRef<TrunkDims>, L> Sequence<D, L> {
    /// The blocks of rows of the batch: `(first row, rows)`.
    pub(crate) fn blocks(&self) -> Vec<(usize, usize)> {
        row_blocks(self.batch, ROWS_PER_BLOCK)
    }

    /// The inputs of the block of rows `b0..b0 + rows`, given the batch's `x0 [B, T, d]` and
    /// the block's starting window.
    pub(crate) fn block_input<'a, W>(
        &'a self,
        x0: &'a [f32],
        rows: (usize, usize),
        window: W,
    ) -> BlockInput<'a, W> {
        let io = (x0, &self.starts[..], &self.valid0[..]);
        BlockInput::rows_of(self.dims.as_ref(), self.steps, io, rows, window)
    }

    /// The backward pass over the batch: `block` (the backward pass of one block of rows given
    /// the trace its forward pass saved and the gradient of its outputs) on every block in
    /// parallel, then, in block order, the parameters' gradients `[len]` summed and the
    /// inputs' joined. Each block's window gradient goes to `window` with the block's rows.
    pub(crate) fn backward_blocks<S: Sync>(
        &self,
        (saved, grad): (&[S], &[f32]),
        len: usize,
        block: impl Fn((usize, usize), &S, &[f32]) -> BlockGrads + Sync + Send,
        mut window: impl FnMut((usize, usize), Vec<f32>),
    ) -> (Vec<f32>, Vec<f32>) {
        let (d, steps) = (self.dims.as_ref().d, self.steps);
        let grads = map_saved_blocks(self.blocks(), saved, |(b0, rows), s| {
            block(
                (b0, rows),
                s,
                &grad[b0 * steps * d..(b0 + rows) * steps * d],
            )
        });
        let mut gp = vec![0.0; len];
        let mut gx = Vec::with_capacity(self.batch * steps * d);
        for (rows, g) in self.blocks().into_iter().zip(grads) {
            add_into(&mut gp, &g.params);
            gx.extend_from_slice(&g.x0);
            window(rows, g.window);
            pool::recycle(g.params);
            pool::recycle(g.x0);
        }
        (gp, gx)
    }
}
