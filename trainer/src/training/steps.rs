//! The two NOT updates, shared by the training loop, the warm start and `ot3d bench`:
//! an f-step (T fixed) and a strong-cost T-step (f fixed).

use super::losses::{potential_loss, transport_cost, transport_loss};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::Tensor;
use ot3d_models::nets::{Potential, TransportMap};

/// One f-step: `L_f = mean f(T(x)) − mean f(y)` with T's output detached (no gradient
/// reaches T). Returns the updated f and L_f.
pub fn f_step(
    t: &TransportMap,
    f: Potential,
    optimizer: &mut ModuleOptimizer,
    lr: f64,
    x: Tensor<5>,
    y: Tensor<5>,
    z: Option<Tensor<5>>,
) -> (Potential, f64) {
    let t_x = t.forward(x, z).detach();
    let loss = potential_loss(f.forward(t_x), f.forward(y));
    let grads = GradientsParams::from_grads(loss.backward(), &f);
    let f = optimizer.step(lr, f, grads);
    (f, loss.into_scalar::<f32>() as f64)
}

/// One strong-cost T-step: `L_T = mean ‖x − T(x)‖²/D − mean f(T(x))`. `f_fixed` must be
/// `f.no_grad()`: backward then computes only the gradient through f's input, not f's
/// weights'. Returns the updated T, L_T and the transport cost.
pub fn t_step(
    t: TransportMap,
    f_fixed: &Potential,
    optimizer: &mut ModuleOptimizer,
    lr: f64,
    x: Tensor<5>,
) -> (TransportMap, f64, f64) {
    let t_x = t.forward(x.clone(), None);
    let cost = transport_cost(x, t_x.clone());
    let loss = transport_loss(cost.clone(), f_fixed.forward(t_x));
    let grads = GradientsParams::from_grads(loss.backward(), &t);
    let t = optimizer.step(lr, t, grads);
    (
        t,
        loss.into_scalar::<f32>() as f64,
        cost.into_scalar::<f32>() as f64,
    )
}
