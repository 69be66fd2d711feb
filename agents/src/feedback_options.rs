//! The options of a [`FeedbackTransformer`](crate::feedback::FeedbackTransformer) that both
//! its reference path ([`crate::feedback`]) and its fused kernel ([`crate::kernels::feedback`])
//! read: plain configuration enums, kept below both so neither imports the other for them.
//! Re-exported as `agents::feedback::{MemoryMix, CurrentSlot}` and `agents::{MemoryMix, CurrentSlot}`.

/// What a step's memory vector is made of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemoryMix {
    /// A learned softmax-weighted mix of the embedding and every layer's output (the paper's).
    #[default]
    Learned,
    /// The last layer's output only.
    Top,
    /// The embedded observation only (no layer's output: the memory holds no computed state).
    Embedding,
}

/// What each layer attends to besides the memory window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CurrentSlot {
    /// Its own input at the current step, projected like a memory vector.
    #[default]
    Input,
    /// A learned key/value pair (one per key/value group), the same at every step: the
    /// current step's input reaches the layer only through the residual stream.
    Null,
}

impl MemoryMix {
    /// The name used in configs (`learned`, `top`, `embedding`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Learned => "learned",
            Self::Top => "top",
            Self::Embedding => "embedding",
        }
    }
}

impl CurrentSlot {
    /// The name used in configs (`input`, `null`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::Null => "null",
        }
    }
}
