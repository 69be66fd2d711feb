//! How a fused kernel enters burn: its inputs leave the tensor world as host `f32` buffers, its
//! output comes back as one tensor, and under autodiff it is one node of the graph whose
//! backward step is the kernel's own.

use std::fmt::Debug;
use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, DispatchAutodiffContext, DispatchDevice, Flex};
use burn::prelude::*;
use burn::tensor::TensorData;

/// A fused operation on flat `f32` buffers: `N` inputs, one output.
pub(crate) trait FusedOp: Debug + Send + Sync + 'static {
    /// What the forward pass keeps for the backward pass.
    type Saved: Debug + Send + Sync + 'static;

    /// The output for `inputs`, and (when `save`) what the backward pass needs.
    fn forward(&self, inputs: &[&[f32]], save: bool) -> (Vec<f32>, Option<Self::Saved>);

    /// The gradient of every input given the output's gradient (an empty vector may be
    /// returned for an input that [`BackwardInput::wants`] none).
    fn backward(&self, b: BackwardInput<'_, Self::Saved>) -> Vec<Vec<f32>>;
}

/// What [`FusedOp::backward`] works from.
pub(crate) struct BackwardInput<'a, S> {
    /// The inputs of the forward pass.
    pub inputs: &'a [&'a [f32]],
    /// What the forward pass saved.
    pub saved: &'a S,
    /// The gradient of the output.
    pub grad: &'a [f32],
    /// Whether each input needs a gradient (see [`Self::wants`]).
    wanted: &'a [bool],
}

impl<S> BackwardInput<'_, S> {
    /// Whether input `i` needs a gradient (false for an input the op does not have).
    pub(crate) fn wants(&self, i: usize) -> bool {
        self.wanted.get(i).copied().unwrap_or(false)
    }
}

/// Whether tensors on `device` can go through [`apply`].
pub(crate) fn supports(device: &Device) -> bool {
    match device.as_dispatch() {
        DispatchDevice::Flex(_) => true,
        DispatchDevice::Autodiff(inner) => {
            matches!(**inner, DispatchDevice::Flex(_))
                && device
                    .gradient_checkpointing_strategy()
                    .is_none_or(|s| s == burn::backend::GradientCheckpointingStrategy::Disabled)
        }
        // Reachable when another backend feature (tch, wgpu, cuda) is on.
        #[allow(unreachable_patterns)]
        _ => false,
    }
}

/// A tensor's values on the host, read in place where the flex tensor is contiguous `f32`
/// (no copy), else copied.
pub(crate) enum HostTensor {
    /// The flex tensor itself.
    InPlace(FlexTensor),
    /// A copy.
    Copied(Vec<f32>),
}

impl HostTensor {
    /// Reads `tensor` (plain flex, or autodiff over flex).
    pub(crate) fn new<const D: usize>(tensor: Tensor<D>) -> Self {
        let inner = if tensor.device().is_autodiff() {
            tensor.inner()
        } else {
            tensor
        };
        match inner.try_into_primitive::<Flex>() {
            Ok(flex) if flex.dtype() == burn::tensor::DType::F32 && flex.is_contiguous() => {
                Self::InPlace(flex)
            }
            Ok(flex) => Self::Copied(host(&flex)),
            Err(e) => panic!("fused kernels read flex tensors: {e:?}"),
        }
    }

    /// The values, row-major.
    pub(crate) fn values(&self) -> &[f32] {
        match self {
            Self::InPlace(t) => t.as_slice::<f32>().expect("contiguous f32"),
            Self::Copied(v) => v,
        }
    }
}

fn host(tensor: &FlexTensor) -> Vec<f32> {
    tensor
        .clone()
        .into_data()
        .try_into_vec::<f32>()
        .expect("fused kernels run on f32 tensors")
}

fn flex(values: Vec<f32>) -> FlexTensor {
    let n = values.len();
    FlexTensor::from_data(TensorData::new(values, [n]))
}

#[derive(Debug)]
struct State<Op: FusedOp> {
    op: Op,
    inputs: Vec<Vec<f32>>,
    saved: Op::Saved,
}

#[derive(Debug)]
struct FusedBackward<Op: FusedOp>(std::marker::PhantomData<Op>);

impl<Op: FusedOp, const N: usize> Backward<Flex, N> for FusedBackward<Op> {
    type State = Arc<State<Op>>;

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = host(&grads.consume::<Flex>(&ops.node));
        let state = ops.state;
        let wanted: Vec<bool> = ops.parents.iter().map(Option::is_some).collect();
        let inputs: Vec<&[f32]> = state.inputs.iter().map(Vec::as_slice).collect();
        let input_grads = state.op.backward(BackwardInput {
            inputs: &inputs,
            saved: &state.saved,
            grad: &grad,
            wanted: &wanted,
        });
        for (parent, g) in ops.parents.into_iter().zip(input_grads) {
            if let Some(node) = parent {
                grads.register::<Flex>(node.id, flex(g));
            }
        }
    }
}

/// Runs `op` on the flat (rank-1) `inputs`, all on one flex device (bare or autodiff), and
/// returns its output as a rank-1 tensor on the same device. Under autodiff the output is one
/// node of the graph whose backward step is [`FusedOp::backward`].
pub(crate) fn apply<Op: FusedOp, const N: usize>(op: Op, inputs: [Tensor<1>; N]) -> Tensor<1> {
    let device = inputs[0].device();
    if device.is_autodiff() {
        let prims = inputs.map(|t| {
            let dispatch = t.into_dispatch();
            let t = Tensor::<1>::from_dispatch(dispatch.clone());
            match dispatch.autodiff {
                DispatchAutodiffContext::Enabled(_) => t
                    .try_into_primitive::<Autodiff<Flex>>()
                    .expect("fused kernel inputs on autodiff(flex)"),
                // A constant on the autodiff device (detached): an untracked node.
                DispatchAutodiffContext::Disabled => FloatTensor::<Autodiff<Flex>>::new(
                    t.try_into_primitive::<Flex>()
                        .expect("fused kernel inputs on flex"),
                ),
            }
        });
        let host_inputs: Vec<Vec<f32>> = prims.iter().map(|p| host(p.primitive())).collect();
        let nodes = prims.each_ref().map(|p| p.node());
        let out = match FusedBackward::<Op>(std::marker::PhantomData)
            .prepare::<burn::backend::autodiff::checkpoint::strategy::NoCheckpointing>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let slices: Vec<&[f32]> = host_inputs.iter().map(Vec::as_slice).collect();
                let (output, saved) = op.forward(&slices, true);
                let saved = saved.expect("forward asked to save");
                let state = Arc::new(State {
                    op,
                    inputs: host_inputs,
                    saved,
                });
                prep.finish(state, flex(output))
            }
            OpsKind::UnTracked(prep) => {
                let slices: Vec<&[f32]> = host_inputs.iter().map(Vec::as_slice).collect();
                prep.finish(flex(op.forward(&slices, false).0))
            }
        };
        Tensor::from_primitive::<Autodiff<Flex>>(out)
    } else {
        let host_inputs: Vec<Vec<f32>> = inputs
            .into_iter()
            .map(|t| {
                host(
                    &t.try_into_primitive::<Flex>()
                        .expect("fused kernel inputs on flex"),
                )
            })
            .collect();
        let slices: Vec<&[f32]> = host_inputs.iter().map(Vec::as_slice).collect();
        Tensor::from_primitive::<Flex>(flex(op.forward(&slices, false).0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `y = a ⊙ b`, the smallest op with two differentiable inputs.
    #[derive(Debug)]
    struct Mul;

    impl FusedOp for Mul {
        type Saved = ();
        fn forward(&self, inputs: &[&[f32]], _: bool) -> (Vec<f32>, Option<()>) {
            let y = inputs[0]
                .iter()
                .zip(inputs[1])
                .map(|(a, b)| a * b)
                .collect();
            (y, Some(()))
        }
        fn backward(&self, b: BackwardInput<'_, ()>) -> Vec<Vec<f32>> {
            let (x, y, grad) = (b.inputs[0], b.inputs[1], b.grad);
            vec![
                grad.iter().zip(y).map(|(g, y)| g * y).collect(),
                grad.iter().zip(x).map(|(g, x)| g * x).collect(),
            ]
        }
    }

    #[test]
    fn a_fused_op_is_one_differentiable_node() {
        let device = Device::flex().autodiff();
        let a = Tensor::<1>::from_floats([1.0, 2.0, 3.0], &device).require_grad();
        let b = Tensor::<1>::from_floats([4.0, 5.0, 6.0], &device).require_grad();
        // Operations before and after the fused node, so the gradient has to pass through it.
        let y = apply(Mul, [a.clone() * 2.0, b.clone().exp()]);
        let loss = (y * Tensor::from_floats([1.0, -1.0, 0.5], &device)).sum();
        let grads = loss.backward();
        let grad = |t: &Tensor<1>| {
            t.grad(&grads)
                .unwrap()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap()
        };
        let (ga, gb) = (grad(&a), grad(&b));
        let w = [1.0f32, -1.0, 0.5];
        for i in 0..3 {
            let (av, bv) = ([1.0f32, 2.0, 3.0][i], [4.0f32, 5.0, 6.0][i]);
            assert!((ga[i] - w[i] * 2.0 * bv.exp()).abs() < 1e-3 * bv.exp());
            assert!((gb[i] - w[i] * 2.0 * av * bv.exp()).abs() < 1e-3 * bv.exp());
        }
        // An input on the inner device, as `to_device` leaves it: a constant.
        let c =
            Tensor::<1>::from_floats([4.0, 5.0, 6.0], &device.clone().inner()).to_device(&device);
        let y = apply(Mul, [a.clone(), c]);
        let ga = y.sum().backward();
        let ga = a
            .grad(&ga)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(ga, [4.0, 5.0, 6.0]);
        let plain = apply(
            Mul,
            [
                Tensor::from_floats([2.0, 3.0], &Device::flex()),
                Tensor::from_floats([4.0, 5.0], &Device::flex()),
            ],
        );
        assert_eq!(plain.into_data().try_to_vec::<f32>().unwrap(), [8.0, 15.0]);
    }
}
