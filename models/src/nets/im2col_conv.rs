//! 3D convolution as im2col and one batched matmul in burn's own tensor ops, for backends
//! whose conv3d kernels are slow: differentiable by burn's autodiff, on any device.

use super::uniform_geometry;
use burn::nn::conv::Conv3d;
use burn::tensor::ops::PadMode;
use burn::tensor::{Tensor, s};

/// `conv.forward(x)` as im2col + matmul: the k³ strided views of the padded input stacked
/// into columns `[batch, channels·k³, positions]`, times the weight `[out, channels·k³]`.
/// Geometries it does not cover go to burn's conv3d.
pub fn conv3d(conv: &Conv3d, x: Tensor<5>) -> Tensor<5> {
    let Some((stride, padding)) = uniform_geometry(conv) else {
        return conv.forward(x);
    };
    let [batch, channels, d, h, w] = x.dims();
    let weight = conv.weight.val();
    let [out_channels, _, k, _, _] = weight.dims();
    let out = |n: usize| (n + 2 * padding - k) / stride + 1;
    let (od, oh, ow) = (out(d), out(h), out(w));
    let x = if padding > 0 {
        x.pad([(padding, padding); 3], PadMode::Constant(0.0))
    } else {
        x
    };
    let span = |start: usize, n: usize| start..start + stride * (n - 1) + 1;
    let stride = stride as isize;
    let mut views = Vec::with_capacity(k * k * k);
    for kd in 0..k {
        for kh in 0..k {
            for kw in 0..k {
                views.push(x.clone().slice(s![
                    ..,
                    ..,
                    span(kd, od);stride,
                    span(kh, oh);stride,
                    span(kw, ow);stride
                ]));
            }
        }
    }
    // [batch, channels, k³, od, oh, ow]: row index channel·k³ + offset, the weight's layout.
    let rows = channels * k * k * k;
    let columns = Tensor::<5>::stack::<6>(views, 2).reshape([batch, rows, od * oh * ow]);
    let y = weight
        .reshape([1, out_channels, rows])
        .matmul(columns)
        .reshape([batch, out_channels, od, oh, ow]);
    match &conv.bias {
        Some(bias) => y + bias.val().reshape([1, out_channels, 1, 1, 1]),
        None => y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nets::conv_test_support::{assert_close, conv};
    use burn::module::Param;
    use burn::tensor::{Device, Distribution};

    /// ∂⟨r, conv(x)⟩ with respect to x, weight and bias.
    fn gradients(
        conv: &Conv3d,
        x: Tensor<5>,
        r: Tensor<5>,
        forward: impl Fn(&Conv3d, Tensor<5>) -> Tensor<5>,
    ) -> [Tensor<5>; 3] {
        let leaf = |t: Tensor<5>| t.autodiff().detach().require_grad();
        let x = leaf(x);
        let mut conv = conv.clone();
        conv.weight = Param::from_tensor(leaf(conv.weight.val()));
        let bias = conv.bias.as_ref().expect("bias").val();
        conv.bias = Some(Param::from_tensor(bias.autodiff().detach().require_grad()));
        let grads = (forward(&conv, x.clone()) * r.autodiff()).sum().backward();
        let bias = conv.bias.as_ref().unwrap().val().grad(&grads).unwrap();
        [
            x.grad(&grads).unwrap(),
            conv.weight.val().grad(&grads).unwrap(),
            bias.reshape([1, 1, 1, 1, -1]),
        ]
    }

    /// Values and the gradients of input, weight and bias against burn's conv3d, for the
    /// networks' geometries (3×3×3 at stride 1 and 2, the 1×1×1 head) on uneven shapes.
    #[test]
    fn im2col_matches_burns_conv3d_forward_and_backward() {
        let device = Device::flex();
        for (conv, shape) in [
            (conv([3, 4], 3, 1, 1, true), [2, 3, 6, 5, 7]),
            (conv([4, 6], 3, 2, 1, true), [3, 4, 8, 8, 8]),
            (conv([5, 2], 3, 2, 1, true), [2, 5, 5, 6, 3]),
            (conv([4, 3], 1, 1, 0, true), [2, 4, 4, 4, 4]),
        ] {
            let what = format!("{shape:?}");
            let x = Tensor::<5>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            let ours = conv3d(&conv, x.clone());
            let theirs = conv.forward(x.clone());
            let r = Tensor::<5>::random(theirs.dims(), Distribution::Normal(0.0, 1.0), &device);
            assert_close(ours, theirs, &what);
            let ours = gradients(&conv, x.clone(), r.clone(), conv3d);
            let theirs = gradients(&conv, x, r, |c, x| c.forward(x));
            for ((a, b), part) in ours.into_iter().zip(theirs).zip(["dx", "dw", "db"]) {
                assert_close(a, b, &format!("{what} {part}"));
            }
        }
    }
}
