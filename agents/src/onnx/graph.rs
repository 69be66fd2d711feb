//! A small builder of ONNX graphs: nodes of the default operator set with generated value
//! names, and constant tensors (initializers) stored as little-endian `raw_data`.

use std::collections::HashMap;

use super::proto::{
    ATTRIBUTE_FLOAT, ATTRIBUTE_INT, AttributeProto, DATA_TYPE_FLOAT, DATA_TYPE_INT64, NodeProto,
    TensorProto,
};

/// A node attribute.
pub(crate) enum Attr {
    /// An integer attribute.
    Int(&'static str, i64),
    /// A float attribute.
    Float(&'static str, f32),
}

impl Attr {
    fn into_proto(self) -> AttributeProto {
        let mut a = AttributeProto::default();
        match self {
            Attr::Int(name, i) => {
                a.name = Some(name.into());
                a.r#type = Some(ATTRIBUTE_INT);
                a.i = Some(i);
            }
            Attr::Float(name, f) => {
                a.name = Some(name.into());
                a.r#type = Some(ATTRIBUTE_FLOAT);
                a.f = Some(f);
            }
        }
        a
    }
}

/// The nodes and initializers of a graph under construction.
#[derive(Default)]
pub(crate) struct GraphBuilder {
    pub(crate) nodes: Vec<NodeProto>,
    pub(crate) initializers: Vec<TensorProto>,
    next_id: usize,
    scalars: HashMap<u32, String>,
    int_constants: HashMap<Vec<i64>, String>,
}

impl GraphBuilder {
    /// A fresh value name starting with `hint`.
    fn fresh(&mut self, hint: &str) -> String {
        self.next_id += 1;
        format!("{hint}_{}", self.next_id)
    }

    /// Appends a node with the given output names.
    pub(crate) fn node_into(
        &mut self,
        op: &str,
        inputs: &[&str],
        attrs: Vec<Attr>,
        outputs: Vec<String>,
    ) {
        let name = format!("{op}_{}", self.nodes.len());
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs,
            name: Some(name),
            op_type: Some(op.into()),
            domain: None,
            attribute: attrs.into_iter().map(Attr::into_proto).collect(),
            doc_string: None,
        });
    }

    /// Appends a node with one output and returns that output's name.
    pub(crate) fn node(
        &mut self,
        op: &str,
        inputs: &[&str],
        attrs: Vec<Attr>,
        hint: &str,
    ) -> String {
        let out = self.fresh(hint);
        self.node_into(op, inputs, attrs, vec![out.clone()]);
        out
    }

    /// A float constant of the given shape (row-major data).
    pub(crate) fn constant(&mut self, hint: &str, dims: &[usize], data: &[f32]) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len());
        let name = self.fresh(hint);
        self.initializers.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: Some(DATA_TYPE_FLOAT),
            name: Some(name.clone()),
            raw_data: Some(data.iter().flat_map(|v| v.to_le_bytes()).collect()),
            ..TensorProto::default()
        });
        name
    }

    /// A float scalar constant (rank 0), shared between uses.
    pub(crate) fn scalar(&mut self, value: f32) -> String {
        if let Some(name) = self.scalars.get(&value.to_bits()) {
            return name.clone();
        }
        let name = self.constant("scalar", &[], &[value]);
        self.scalars.insert(value.to_bits(), name.clone());
        name
    }

    /// A one-dimensional `int64` constant (shapes, axes, slice bounds), shared between uses.
    pub(crate) fn ints(&mut self, values: &[i64]) -> String {
        if let Some(name) = self.int_constants.get(values) {
            return name.clone();
        }
        let name = self.fresh("ints");
        self.initializers.push(TensorProto {
            dims: vec![values.len() as i64],
            data_type: Some(DATA_TYPE_INT64),
            name: Some(name.clone()),
            raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
            ..TensorProto::default()
        });
        self.int_constants.insert(values.to_vec(), name.clone());
        name
    }

    /// `a + b` (broadcasting).
    pub(crate) fn add(&mut self, a: &str, b: &str) -> String {
        self.node("Add", &[a, b], vec![], "add")
    }

    /// `a − b` (broadcasting).
    pub(crate) fn sub(&mut self, a: &str, b: &str) -> String {
        self.node("Sub", &[a, b], vec![], "sub")
    }

    /// `a · b` elementwise (broadcasting).
    pub(crate) fn mul(&mut self, a: &str, b: &str) -> String {
        self.node("Mul", &[a, b], vec![], "mul")
    }

    /// `a / b` elementwise (broadcasting).
    pub(crate) fn div(&mut self, a: &str, b: &str) -> String {
        self.node("Div", &[a, b], vec![], "div")
    }

    /// Matrix product.
    pub(crate) fn matmul(&mut self, a: &str, b: &str) -> String {
        self.node("MatMul", &[a, b], vec![], "matmul")
    }

    /// An elementwise unary operator (`Tanh`, `Sigmoid`, `Relu`, `Identity`).
    pub(crate) fn unary(&mut self, op: &str, x: &str) -> String {
        let hint = op.to_lowercase();
        self.node(op, &[x], vec![], &hint)
    }

    /// Concatenation along `axis`.
    pub(crate) fn concat(&mut self, parts: &[&str], axis: i64) -> String {
        self.node("Concat", parts, vec![Attr::Int("axis", axis)], "concat")
    }

    /// Elements `start..end` along `axis`.
    pub(crate) fn slice(&mut self, x: &str, axis: i64, start: usize, end: usize) -> String {
        let starts = self.ints(&[start as i64]);
        let ends = self.ints(&[end as i64]);
        let axes = self.ints(&[axis]);
        self.node("Slice", &[x, &starts, &ends, &axes], vec![], "slice")
    }

    /// Reshape to `shape` (`-1`: inferred, used for the batch dimension).
    pub(crate) fn reshape(&mut self, x: &str, shape: &[i64]) -> String {
        let shape = self.ints(shape);
        self.node("Reshape", &[x, &shape], vec![], "reshape")
    }

    /// The sum over `axis`, keeping it (size 1) or not.
    pub(crate) fn reduce_sum(&mut self, x: &str, axis: i64, keep: bool) -> String {
        let axes = self.ints(&[axis]);
        self.node(
            "ReduceSum",
            &[x, &axes],
            vec![Attr::Int("keepdims", i64::from(keep))],
            "sum",
        )
    }

    /// Softmax along `axis`.
    pub(crate) fn softmax(&mut self, x: &str, axis: i64) -> String {
        self.node("Softmax", &[x], vec![Attr::Int("axis", axis)], "softmax")
    }

    /// `condition ? a : b` (broadcasting).
    pub(crate) fn select(&mut self, condition: &str, a: &str, b: &str) -> String {
        self.node("Where", &[condition, a, b], vec![], "where")
    }

    /// `a < b` (boolean, broadcasting).
    pub(crate) fn less(&mut self, a: &str, b: &str) -> String {
        self.node("Less", &[a, b], vec![], "less")
    }

    /// `x` broadcast to the runtime shape `shape` (an `int64` vector value).
    pub(crate) fn expand(&mut self, x: &str, shape: &str) -> String {
        self.node("Expand", &[x, shape], vec![], "expand")
    }

    /// `min(max(x, lo), hi)` with scalar bounds.
    pub(crate) fn clip(&mut self, x: &str, lo: f32, hi: f32) -> String {
        let (lo, hi) = (self.scalar(lo), self.scalar(hi));
        self.node("Clip", &[x, &lo, &hi], vec![], "clip")
    }

    /// LayerNormalization over the last axis.
    pub(crate) fn layer_norm(
        &mut self,
        x: &str,
        scale: &str,
        bias: Option<&str>,
        epsilon: f32,
    ) -> String {
        let mut inputs = vec![x, scale];
        if let Some(b) = bias {
            inputs.push(b);
        }
        self.node(
            "LayerNormalization",
            &inputs,
            vec![Attr::Int("axis", -1), Attr::Float("epsilon", epsilon)],
            "layernorm",
        )
    }
}
