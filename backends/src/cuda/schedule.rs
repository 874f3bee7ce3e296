//! Turning the graph and concrete input shapes into the shapes of every
//! value and the kernel launches that compute them (a [`Schedule`]).
//!
//! The engine builds one schedule per batch size (all other dimensions are
//! fixed at load), the first time it sees that size; the schedule for
//! `max_batch_size` also sizes the instance's buffers. Identity, Flatten
//! and Reshape launch nothing: their output is their input's buffer under
//! another shape.

use ferrite_kernels::params::BinaryOp;
use ferrite_kernels::params::{
    broadcast_shape, Conv2dParams, Pool2dParams, PoolMode, Strided, UnaryOp,
};

use super::graph::{AutoPad, Graph, Op, ValueId, Window};

/// One matrix product, row-major: `y[i] = alpha * op(a[i]) * op(b[i]) +
/// beta * y[i]` for `batch` matrices at element strides `stride_*`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct GemmCall {
    pub a: ValueId,
    pub b: ValueId,
    pub y: ValueId,
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// `a` is stored `[k, m]`.
    pub trans_a: bool,
    /// `b` is stored `[n, k]`.
    pub trans_b: bool,
    pub alpha: f32,
    pub beta: f32,
    pub stride_a: usize,
    pub stride_b: usize,
    pub stride_y: usize,
}

/// One kernel launch (or cuBLAS call).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Launch {
    Unary {
        x: ValueId,
        y: ValueId,
        d: Strided,
        op: UnaryOp,
    },
    Binary {
        a: ValueId,
        b: ValueId,
        y: ValueId,
        d: Strided,
        op: BinaryOp,
    },
    Gemm(GemmCall),
    Softmax {
        x: ValueId,
        y: ValueId,
        outer: u32,
        axis: u32,
        inner: u32,
    },
    Conv {
        x: ValueId,
        w: ValueId,
        bias: Option<ValueId>,
        y: ValueId,
        params: Conv2dParams,
    },
    Pool {
        x: ValueId,
        y: ValueId,
        params: Pool2dParams,
    },
    GlobalAveragePool {
        x: ValueId,
        y: ValueId,
        planes: u32,
        size: u32,
    },
}

/// Every value's shape and the launches, in order, for one set of input
/// shapes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Schedule {
    pub shapes: Vec<Vec<usize>>,
    pub launches: Vec<Launch>,
}

fn u32_of(value: usize, what: &str) -> Result<u32, String> {
    u32::try_from(value).map_err(|_| format!("{what} {value} exceeds the kernels' 32-bit limit"))
}

/// The buffer each value lives in: its own, or (for Identity, Flatten and
/// Reshape outputs) the one of the value it renames.
pub(crate) fn roots(graph: &Graph) -> Vec<ValueId> {
    let mut root: Vec<ValueId> = (0..graph.values.len()).collect();
    for node in &graph.nodes {
        if matches!(node.op, Op::Alias | Op::Flatten { .. } | Op::Reshape { .. }) {
            root[node.output] = root[node.inputs[0]];
        }
    }
    root
}

/// Computes the schedule for the given input shapes (in the order of
/// `graph.inputs`). The error names the node.
pub(crate) fn schedule(graph: &Graph, inputs: &[Vec<usize>]) -> Result<Schedule, String> {
    let mut shapes: Vec<Option<Vec<usize>>> = graph
        .values
        .iter()
        .map(|v| v.constant.as_ref().map(|c| c.shape.clone()))
        .collect();
    if inputs.len() != graph.inputs.len() {
        return Err(format!(
            "{} input shapes given for {} inputs",
            inputs.len(),
            graph.inputs.len()
        ));
    }
    for (&id, shape) in graph.inputs.iter().zip(inputs) {
        shapes[id] = Some(shape.clone());
    }
    let mut launches = Vec::new();
    for node in &graph.nodes {
        let operand = |i: usize| -> Result<&Vec<usize>, String> {
            shapes[node.inputs[i]]
                .as_ref()
                .ok_or_else(|| format!("{}: input {i} has no shape", node.name))
        };
        let x = node.inputs[0];
        let y = node.output;
        let fail = |why: String| format!("{}: {why}", node.name);
        let shape = match &node.op {
            Op::Alias => operand(0)?.clone(),
            Op::Flatten { axis } => {
                let input = operand(0)?;
                let axis = normalise(*axis, input.len() + 1).map_err(fail)?;
                vec![
                    input[..axis].iter().product(),
                    input[axis..].iter().product(),
                ]
            }
            Op::Reshape { shape, allow_zero } => {
                reshape(operand(0)?, shape, *allow_zero).map_err(fail)?
            }
            Op::Unary(op) => {
                let input = operand(0)?.clone();
                let d = Strided::unary(&input, &input).map_err(|e| fail(e.to_string()))?;
                launches.push(Launch::Unary { x, y, d, op: *op });
                input
            }
            Op::Binary(op) => {
                let (a, b) = (operand(0)?, operand(1)?);
                let out = broadcast_shape(a, b)
                    .ok_or_else(|| fail(format!("shapes {a:?} and {b:?} do not broadcast")))?;
                let d = Strided::broadcast(&out, a, b).map_err(|e| fail(e.to_string()))?;
                launches.push(Launch::Binary {
                    a: x,
                    b: node.inputs[1],
                    y,
                    d,
                    op: *op,
                });
                out
            }
            Op::Gemm {
                alpha,
                beta,
                trans_a,
                trans_b,
            } => {
                let (a, b) = (operand(0)?, operand(1)?);
                let (&[a0, a1], &[b0, b1]) = (a.as_slice(), b.as_slice()) else {
                    return Err(fail(format!("Gemm needs 2-D inputs, got {a:?} and {b:?}")));
                };
                let (m, k) = if *trans_a { (a1, a0) } else { (a0, a1) };
                let (kb, n) = if *trans_b { (b1, b0) } else { (b0, b1) };
                if k != kb {
                    return Err(fail(format!("inner dimensions differ: {a:?} and {b:?}")));
                }
                let mut beta = *beta;
                match node.inputs.get(2) {
                    Some(&c) if beta != 0.0 => {
                        let c_shape = shapes[c]
                            .as_ref()
                            .ok_or_else(|| fail("C has no shape".into()))?;
                        let d =
                            Strided::unary(&[m, n], c_shape).map_err(|e| fail(e.to_string()))?;
                        launches.push(Launch::Unary {
                            x: c,
                            y,
                            d,
                            op: UnaryOp::Identity,
                        });
                    }
                    _ => beta = 0.0,
                }
                launches.push(Launch::Gemm(GemmCall {
                    a: x,
                    b: node.inputs[1],
                    y,
                    batch: 1,
                    m,
                    n,
                    k,
                    trans_a: *trans_a,
                    trans_b: *trans_b,
                    alpha: *alpha,
                    beta,
                    stride_a: m * k,
                    stride_b: k * n,
                    stride_y: m * n,
                }));
                vec![m, n]
            }
            Op::MatMul => {
                let (a, b) = (operand(0)?.clone(), operand(1)?.clone());
                let (call, out) = matmul(x, node.inputs[1], y, &a, &b).map_err(fail)?;
                launches.push(Launch::Gemm(call));
                out
            }
            Op::Softmax { axis, flatten } => {
                let input = operand(0)?.clone();
                let axis = normalise(*axis, input.len()).map_err(fail)?;
                let outer: usize = input[..axis].iter().product();
                let (length, inner) = if *flatten {
                    (input[axis..].iter().product(), 1)
                } else {
                    (input[axis], input[axis + 1..].iter().product())
                };
                launches.push(Launch::Softmax {
                    x,
                    y,
                    outer: u32_of(outer, "softmax rows").map_err(fail)?,
                    axis: u32_of(length, "softmax axis").map_err(fail)?,
                    inner: u32_of(inner, "softmax columns").map_err(fail)?,
                });
                input
            }
            Op::Conv { window, groups } => {
                let (input, weights) = (operand(0)?, operand(1)?);
                let (params, out) = conv(input, weights, window, *groups).map_err(fail)?;
                if let Some(&bias) = node.inputs.get(2) {
                    let bias_shape = shapes[bias]
                        .as_ref()
                        .ok_or_else(|| fail("bias has no shape".into()))?;
                    if bias_shape.as_slice() != [out[1]] {
                        return Err(fail(format!("bias {bias_shape:?} is not [{}]", out[1])));
                    }
                }
                launches.push(Launch::Conv {
                    x,
                    w: node.inputs[1],
                    bias: node.inputs.get(2).copied(),
                    y,
                    params,
                });
                out
            }
            Op::Pool {
                mode,
                window,
                count_include_pad,
            } => {
                let (params, out) =
                    pool(operand(0)?, window, *mode, *count_include_pad).map_err(fail)?;
                launches.push(Launch::Pool { x, y, params });
                out
            }
            Op::GlobalAveragePool => {
                let input = operand(0)?;
                if input.len() < 3 {
                    return Err(fail(format!("input {input:?} has no spatial dimension")));
                }
                let planes = input[0] * input[1];
                let size: usize = input[2..].iter().product();
                launches.push(Launch::GlobalAveragePool {
                    x,
                    y,
                    planes: u32_of(planes, "planes").map_err(fail)?,
                    size: u32_of(size, "plane size").map_err(fail)?,
                });
                let mut out = vec![input[0], input[1]];
                out.extend(std::iter::repeat_n(1, input.len() - 2));
                out
            }
        };
        shapes[y] = Some(shape);
    }
    let shapes = shapes
        .into_iter()
        .enumerate()
        .map(|(id, s)| {
            s.ok_or_else(|| format!("value '{}' is never computed", graph.values[id].name))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Schedule { shapes, launches })
}

/// An axis in `[-rank, rank)` as an index.
fn normalise(axis: i64, rank: usize) -> Result<usize, String> {
    let rank_i = rank as i64;
    let index = if axis < 0 { axis + rank_i } else { axis };
    if (0..rank_i).contains(&index) {
        Ok(index as usize)
    } else {
        Err(format!("axis {axis} is out of range for rank {}", rank))
    }
}

fn reshape(input: &[usize], target: &[i64], allow_zero: bool) -> Result<Vec<usize>, String> {
    let count: usize = input.iter().product();
    let mut out = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &d) in target.iter().enumerate() {
        match d {
            0 if !allow_zero => {
                out.push(*input.get(i).ok_or_else(|| {
                    format!("reshape {target:?} copies a dimension {input:?} lacks")
                })?)
            }
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            d if d >= 0 => out.push(d as usize),
            _ => return Err(format!("reshape target {target:?} is invalid")),
        }
    }
    let known: usize = out.iter().product();
    if let Some(i) = infer {
        if known == 0 || !count.is_multiple_of(known) {
            return Err(format!("cannot reshape {input:?} to {target:?}"));
        }
        out[i] = count / known;
    } else if known != count {
        return Err(format!("cannot reshape {input:?} to {target:?}"));
    }
    Ok(out)
}

fn matmul(
    a_id: ValueId,
    b_id: ValueId,
    y: ValueId,
    a: &[usize],
    b: &[usize],
) -> Result<(GemmCall, Vec<usize>), String> {
    if a.len() < 2 || b.len() < 2 {
        return Err(format!(
            "MatMul of {a:?} and {b:?}: the cuda engine needs inputs of rank 2 or more"
        ));
    }
    let k = a[a.len() - 1];
    let (kb, n) = (b[b.len() - 2], b[b.len() - 1]);
    if k != kb {
        return Err(format!("MatMul inner dimensions differ: {a:?} and {b:?}"));
    }
    let lead = &a[..a.len() - 2];
    let rows = a[a.len() - 2];
    let (batch, m, stride_b) = if b.len() == 2 {
        (1, lead.iter().product::<usize>() * rows, 0)
    } else if b.len() == a.len() && b[..b.len() - 2] == *lead {
        (lead.iter().product(), rows, k * n)
    } else {
        return Err(format!(
            "MatMul of {a:?} and {b:?}: the cuda engine needs a 2-D right operand or equal \
             leading dimensions"
        ));
    };
    let mut out = a[..a.len() - 1].to_vec();
    out.push(n);
    Ok((
        GemmCall {
            a: a_id,
            b: b_id,
            y,
            batch,
            m,
            n,
            k,
            trans_a: false,
            trans_b: false,
            alpha: 1.0,
            beta: 0.0,
            stride_a: m * k,
            stride_b,
            stride_y: m * n,
        },
        out,
    ))
}

/// Output size and begin padding of one spatial axis.
fn axis(
    extent: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    pads: (usize, usize),
    auto_pad: AutoPad,
) -> Result<(usize, usize, usize), String> {
    let effective = (kernel - 1) * dilation + 1;
    let (begin, end) = match auto_pad {
        AutoPad::NotSet => pads,
        AutoPad::Valid => (0, 0),
        AutoPad::SameUpper | AutoPad::SameLower => {
            let out = extent.div_ceil(stride);
            let total = ((out.max(1) - 1) * stride + effective).saturating_sub(extent);
            let small = total / 2;
            if auto_pad == AutoPad::SameUpper {
                (small, total - small)
            } else {
                (total - small, small)
            }
        }
    };
    let padded = extent + begin + end;
    if padded < effective {
        return Err(format!(
            "the window ({effective}) is larger than the padded input ({padded})"
        ));
    }
    Ok(((padded - effective) / stride + 1, begin, end))
}

fn conv(
    input: &[usize],
    weights: &[usize],
    window: &Window,
    groups: usize,
) -> Result<(Conv2dParams, Vec<usize>), String> {
    let (&[n, c, h, w], &[c_out, c_group, kh, kw]) = (input, weights) else {
        return Err(format!(
            "the cuda engine runs 2-D convolutions only (input {input:?}, weights {weights:?})"
        ));
    };
    if let Some(kernel) = window.kernel {
        if kernel != [kh, kw] {
            return Err(format!(
                "kernel_shape {kernel:?} differs from the weights {weights:?}"
            ));
        }
    }
    if c != c_group * groups || !c_out.is_multiple_of(groups) {
        return Err(format!(
            "input {input:?} and weights {weights:?} do not match group {groups}"
        ));
    }
    let p = &window.pads;
    let (oh, pad_h, _) = axis(
        h,
        kh,
        window.strides[0],
        window.dilations[0],
        (p[0], p[2]),
        window.auto_pad,
    )?;
    let (ow, pad_w, _) = axis(
        w,
        kw,
        window.strides[1],
        window.dilations[1],
        (p[1], p[3]),
        window.auto_pad,
    )?;
    let v = |x: usize| u32_of(x, "convolution size");
    let params = Conv2dParams {
        n: v(n)?,
        c_in: v(c)?,
        h: v(h)?,
        w: v(w)?,
        c_out: v(c_out)?,
        kh: v(kh)?,
        kw: v(kw)?,
        oh: v(oh)?,
        ow: v(ow)?,
        stride_h: v(window.strides[0])?,
        stride_w: v(window.strides[1])?,
        pad_h: v(pad_h)?,
        pad_w: v(pad_w)?,
        dil_h: v(window.dilations[0])?,
        dil_w: v(window.dilations[1])?,
        groups: v(groups)?,
        has_bias: 0,
    };
    params.validate().map_err(|e| e.to_string())?;
    Ok((params, vec![n, c_out, oh, ow]))
}

fn pool(
    input: &[usize],
    window: &Window,
    mode: PoolMode,
    count_include_pad: bool,
) -> Result<(Pool2dParams, Vec<usize>), String> {
    let &[n, c, h, w] = input else {
        return Err(format!(
            "the cuda engine pools 2-D inputs only (got {input:?})"
        ));
    };
    let [kh, kw] = window.kernel.unwrap_or([1, 1]);
    let p = &window.pads;
    let (oh, pad_h, end_h) = axis(
        h,
        kh,
        window.strides[0],
        window.dilations[0],
        (p[0], p[2]),
        window.auto_pad,
    )?;
    let (ow, pad_w, end_w) = axis(
        w,
        kw,
        window.strides[1],
        window.dilations[1],
        (p[1], p[3]),
        window.auto_pad,
    )?;
    let reach_h = (kh - 1) * window.dilations[0] + 1;
    let reach_w = (kw - 1) * window.dilations[1] + 1;
    if pad_h.max(end_h) >= reach_h || pad_w.max(end_w) >= reach_w {
        return Err(format!("pads {p:?} must be smaller than the window"));
    }
    let v = |x: usize| u32_of(x, "pooling size");
    let params = Pool2dParams {
        n: v(n)?,
        c: v(c)?,
        h: v(h)?,
        w: v(w)?,
        kh: v(kh)?,
        kw: v(kw)?,
        oh: v(oh)?,
        ow: v(ow)?,
        stride_h: v(window.strides[0])?,
        stride_w: v(window.strides[1])?,
        pad_h: v(pad_h)?,
        pad_w: v(pad_w)?,
        dil_h: v(window.dilations[0])?,
        dil_w: v(window.dilations[1])?,
        mode: mode as u32,
        count_include_pad: u32::from(count_include_pad),
    };
    params.validate().map_err(|e| e.to_string())?;
    Ok((params, vec![n, c, oh, ow]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reshape_copies_and_infers() {
        assert_eq!(reshape(&[4, 3, 2], &[0, -1], false).unwrap(), vec![4, 6]);
        assert_eq!(
            reshape(&[4, 3, 2], &[2, -1, 3], false).unwrap(),
            vec![2, 4, 3]
        );
        assert!(reshape(&[4, 3], &[5, -1], false).is_err());
        assert!(reshape(&[4, 3], &[-1, -1], false).is_err());
        assert!(reshape(&[0, 3], &[0, 3], true).is_ok());
    }

    #[test]
    fn matmul_flattens_or_batches() {
        let (call, out) = matmul(0, 1, 2, &[2, 3, 4], &[4, 5]).unwrap();
        assert_eq!((call.batch, call.m, call.n, call.k), (1, 6, 5, 4));
        assert_eq!(out, vec![2, 3, 5]);
        let (call, out) = matmul(0, 1, 2, &[2, 3, 4], &[2, 4, 5]).unwrap();
        assert_eq!((call.batch, call.m, call.stride_b), (2, 3, 20));
        assert_eq!(out, vec![2, 3, 5]);
        assert!(matmul(0, 1, 2, &[2, 3, 4], &[3, 4, 5]).is_err());
        assert!(matmul(0, 1, 2, &[4], &[4, 5]).is_err());
    }

    #[test]
    fn windows_follow_onnx_padding_rules() {
        assert_eq!(
            axis(32, 3, 1, 1, (1, 1), AutoPad::NotSet).unwrap(),
            (32, 1, 1)
        );
        assert_eq!(
            axis(32, 2, 2, 1, (0, 0), AutoPad::NotSet).unwrap(),
            (16, 0, 0)
        );
        assert_eq!(
            axis(7, 3, 2, 1, (0, 0), AutoPad::SameUpper).unwrap(),
            (4, 1, 1)
        );
        assert_eq!(
            axis(6, 3, 2, 1, (0, 0), AutoPad::SameUpper).unwrap(),
            (3, 0, 1)
        );
        assert_eq!(
            axis(6, 3, 2, 1, (0, 0), AutoPad::SameLower).unwrap(),
            (3, 1, 0)
        );
        assert_eq!(axis(5, 3, 1, 2, (9, 9), AutoPad::Valid).unwrap(), (1, 0, 0));
        assert!(axis(2, 5, 1, 1, (0, 0), AutoPad::NotSet).is_err());
    }
}
