use super::*;
use burn::module::{Module, Param};

use crate::nets::conv_test_support::{assert_close, conv};
use burn::nn::PaddingConfig3d;
use burn::nn::conv::Conv3dConfig;
use burn::tensor::Distribution;

fn geometries() -> Vec<(Conv3d, [usize; 5])> {
    vec![
        (conv([3, 4], 3, 1, 1, true), [2, 3, 6, 5, 7]),
        (conv([4, 6], 3, 2, 1, true), [3, 4, 8, 8, 8]),
        (conv([5, 2], 3, 2, 1, false), [2, 5, 5, 6, 3]),
        (conv([4, 3], 1, 1, 0, false), [2, 4, 4, 4, 4]),
        (conv([2, 3], 1, 1, 0, true), [1, 2, 3, 2, 5]),
        // Lines of ≥ 8 voxels: the padded grid, ∂x as the transposed conv.
        (conv([3, 4], 3, 1, 1, true), [2, 3, 4, 5, 9]),
    ]
}

#[test]
fn forward_equals_burns_conv3d() {
    for (conv, shape) in geometries() {
        let x = Tensor::<5>::random(shape, Distribution::Normal(0.0, 1.0), &Device::flex());
        assert!(gemm_geometry(&conv, &x).is_some());
        assert_close(
            conv3d(&conv, x.clone()),
            conv.forward(x),
            &format!("{shape:?}"),
        );
    }
}

/// ∂⟨r, conv(x)⟩ with respect to x, weight and bias, through the module's own forward.
fn gradients(
    conv: &Conv3d,
    x: Tensor<5>,
    r: Tensor<5>,
    forward: impl Fn(&Conv3d, Tensor<5>) -> Tensor<5>,
) -> (Tensor<5>, Tensor<5>, Option<Tensor<5>>) {
    let leaf = |t: Tensor<5>| t.autodiff().detach().require_grad();
    let x = leaf(x);
    let mut conv = conv.clone();
    conv.weight = Param::from_tensor(leaf(conv.weight.val()));
    conv.bias = conv
        .bias
        .map(|b| Param::from_tensor(b.val().autodiff().detach().require_grad()));
    let loss = (forward(&conv, x.clone()) * r.autodiff()).sum();
    let grads = loss.backward();
    let bias = conv
        .bias
        .as_ref()
        .map(|b| b.val().grad(&grads).unwrap().reshape([1, 1, 1, 1, -1]));
    (
        x.grad(&grads).unwrap(),
        conv.weight.val().grad(&grads).unwrap(),
        bias,
    )
}

#[test]
fn gradients_equal_burns_autodiff() {
    compare_gradients(conv3d, |c, x| c.forward(x));
}

/// The conv with its bias and leaky ReLU fused into one op, against burn's three.
#[test]
fn the_fused_conv_bias_and_leaky_relu_equal_burns_forward_and_gradients() {
    const SLOPE: f64 = 0.2;
    let burns = |c: &Conv3d, x| burn::tensor::activation::leaky_relu(c.forward(x), SLOPE);
    for (conv, shape) in geometries() {
        let x = Tensor::<5>::random(shape, Distribution::Normal(0.0, 1.0), &Device::flex());
        let what = format!("leaky {shape:?}");
        assert_close(
            conv3d_leaky(&conv, x.clone(), SLOPE),
            burns(&conv, x),
            &what,
        );
    }
    compare_gradients(|c, x| conv3d_leaky(c, x, SLOPE), burns);
}

/// ∂x, ∂weight and ∂bias of `ours` against `burns` on every geometry of the kernels.
fn compare_gradients(
    ours: impl Fn(&Conv3d, Tensor<5>) -> Tensor<5>,
    burns: impl Fn(&Conv3d, Tensor<5>) -> Tensor<5>,
) {
    for (conv, shape) in geometries() {
        let device = Device::flex();
        let x = Tensor::<5>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let out = conv.forward(x.clone()).dims();
        let r = Tensor::<5>::random(out, Distribution::Normal(0.0, 1.0), &device);
        assert!(gemm_geometry(&conv, &x.clone().autodiff()).is_some());
        let ours = gradients(&conv, x.clone(), r.clone(), &ours);
        let burns = gradients(&conv, x, r, &burns);
        let what = format!("{shape:?}");
        assert_close(ours.0, burns.0, &format!("dx {what}"));
        assert_close(ours.1, burns.1, &format!("dweight {what}"));
        assert_eq!(ours.2.is_some(), burns.2.is_some());
        if let (Some(a), Some(b)) = (ours.2, burns.2) {
            assert_close(a, b, &format!("dbias {what}"));
        }
    }
}

/// A frozen layer (`no_grad` weights) still passes its input's gradient on; a layer on a
/// detached input still gets its weight's.
#[test]
fn only_the_tracked_side_gets_a_gradient() {
    let mut conv = conv([2, 3], 3, 1, 1, true);
    conv.weight = Param::from_tensor(conv.weight.val().autodiff().require_grad());
    let x = Tensor::<5>::random(
        [2, 2, 4, 4, 4],
        Distribution::Normal(0.0, 1.0),
        &Device::flex(),
    )
    .autodiff();

    let frozen = conv.clone().no_grad();
    let x_tracked = x.clone().require_grad();
    let grads = conv3d(&frozen, x_tracked.clone()).sum().backward();
    assert!(x_tracked.grad(&grads).is_some());
    assert!(frozen.weight.val().grad(&grads).is_none());

    let grads = conv3d(&conv, x.clone().detach()).sum().backward();
    assert!(conv.weight.val().grad(&grads).is_some());
    assert!(x.grad(&grads).is_none());

    // The same through the fused activation, and its bias alone when the rest is frozen.
    let grads = conv3d_leaky(&frozen, x_tracked.clone(), 0.2)
        .sum()
        .backward();
    assert!(x_tracked.grad(&grads).is_some());
    assert!(frozen.weight.val().grad(&grads).is_none());
    let mut bias_only = frozen.clone();
    let bias = bias_only
        .bias
        .take()
        .unwrap()
        .val()
        .autodiff()
        .require_grad();
    bias_only.bias = Some(Param::from_tensor(bias.clone()));
    let grads = conv3d_leaky(&bias_only, x.clone(), 0.2).sum().backward();
    assert!(bias.grad(&grads).is_some());
    assert!(bias_only.weight.val().grad(&grads).is_none());
}

#[test]
fn geometries_the_kernels_cannot_run_fall_back_to_burn() {
    let dilated = Conv3dConfig::new([2, 2], [3, 3, 3])
        .with_dilation([2, 2, 2])
        .init(&Device::flex());
    assert_eq!(uniform_geometry(&dilated), None);
    let uneven = Conv3dConfig::new([2, 2], [3, 3, 3])
        .with_stride([1, 2, 1])
        .init(&Device::flex());
    assert_eq!(uniform_geometry(&uneven), None);
    let same = Conv3dConfig::new([2, 2], [3, 3, 3])
        .with_padding(PaddingConfig3d::Same)
        .init(&Device::flex());
    assert_eq!(uniform_geometry(&same), None);
    assert_eq!(uniform_geometry(&conv([2, 2], 3, 2, 1, true)), Some((2, 1)));
    // Still computed, by burn.
    let x = Tensor::<5>::random(
        [1, 2, 5, 5, 5],
        Distribution::Normal(0.0, 1.0),
        &Device::flex(),
    );
    assert_eq!(
        conv3d(&dilated, x.clone()).dims(),
        dilated.forward(x).dims()
    );
}
