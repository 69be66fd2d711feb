//! The recurrent state a policy carries between time steps, held by the caller.

use burn::prelude::*;

/// The memory of a batch of envs: a list of batch-first tensors `[B, slots, width]`.
///
/// Each policy decides what its tensors mean (a window of past memory vectors and their
/// validity mask for the Feedback Transformer, per-layer caches for the Transformer, the
/// hidden state for the GRU, nothing for the MLP). Because every tensor is batch-first, the
/// trainer can treat memory generically: select the envs of a minibatch, detach it, store the
/// memory a rollout started with, and measure its size.
///
/// Shapes never change from step to step: a policy's memory is a fixed-size window, so the
/// cost of a step does not grow with the episode's length.
#[derive(Clone, Debug)]
pub struct Memory {
    /// Batch-first tensors `[B, slots, width]`.
    pub tensors: Vec<Tensor<3>>,
}

/// A [`Memory`] (or inputs) that do not fit the policy they are handed to: the shapes the policy
/// expects for the batch of the observations, and the ones it got.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the memory has shapes {got:?} (starts: {starts}), expected [B, slots, width] = {expected:?} \
     for the batch of {batch} observations (was it made by this policy's `init_memory` for \
     {batch} envs?)"
)]
pub struct MemoryLayoutError {
    /// Rows of the observations (the batch size the step runs for).
    pub batch: usize,
    /// The memory's shapes the policy expects for `batch` envs.
    pub expected: Vec<[usize; 3]>,
    /// The memory's shapes.
    pub got: Vec<[usize; 3]>,
    /// Entries of the `starts` vector.
    pub starts: usize,
}

impl Memory {
    /// A memory of zero tensors with the given shapes.
    pub fn zeros(shapes: Vec<[usize; 3]>, device: &Device) -> Self {
        Self {
            tensors: shapes
                .into_iter()
                .map(|shape| Tensor::zeros(shape, device))
                .collect(),
        }
    }

    /// An empty memory (memoryless policies).
    pub fn empty() -> Self {
        Self { tensors: vec![] }
    }

    /// Number of envs the memory is held for, `None` for an empty memory.
    pub fn batch_size(&self) -> Option<usize> {
        self.tensors.first().map(|t| t.dims()[0])
    }

    /// The memory of the envs listed in `indices` (in that order).
    pub fn select(&self, indices: Tensor<1, Int>) -> Self {
        Self {
            tensors: self
                .tensors
                .iter()
                .map(|t| t.clone().select(0, indices.clone()))
                .collect(),
        }
    }

    /// The memories of several batches, one after the other along the batch dimension (all
    /// with the same tensor shapes but the batch).
    pub fn cat(parts: Vec<Memory>) -> Self {
        let Some(first) = parts.first() else {
            return Self::empty();
        };
        let count = first.tensors.len();
        let mut columns: Vec<Vec<Tensor<3>>> = vec![Vec::with_capacity(parts.len()); count];
        for part in parts {
            for (column, t) in columns.iter_mut().zip(part.tensors) {
                column.push(t);
            }
        }
        Self {
            tensors: columns.into_iter().map(|c| Tensor::cat(c, 0)).collect(),
        }
    }

    /// The same memory without gradient history.
    pub fn detach(self) -> Self {
        Self {
            tensors: self.tensors.into_iter().map(|t| t.detach()).collect(),
        }
    }

    /// Moves the memory to `device` (e.g. from an autodiff device to its inner device).
    pub fn to_device(self, device: &Device) -> Self {
        Self {
            tensors: self
                .tensors
                .into_iter()
                .map(|t| t.to_device(device))
                .collect(),
        }
    }

    /// Per-tensor shapes, for tests and diagnostics.
    pub fn shapes(&self) -> Vec<[usize; 3]> {
        self.tensors.iter().map(|t| t.dims()).collect()
    }

    /// Bytes held per env (all tensors, `f32`).
    pub fn bytes_per_env(&self) -> usize {
        self.tensors
            .iter()
            .map(|t| {
                let [_, s, w] = t.dims();
                s * w * std::mem::size_of::<f32>()
            })
            .sum()
    }
}
