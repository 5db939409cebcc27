//! The NOT objectives with the strong quadratic cost (Korotin et al., 2023, Alg. 1):
//! f-step `L_f = mean f(T(x)) − mean f(y)`, T-step `L_T = mean ‖x − T(x)‖²/D − mean f(T(x))`,
//! with D = 3·16³ the number of values per digit; the γ-weak cost's terms (§4.3, and its
//! energy-distance kernel variant); and
//! incomplete transport's weight w on the target term (Gazdieva et al. 2023), and a drift
//! penalty that keeps the potential's scores at a chosen scale.

use burn::tensor::Tensor;

/// `mean over the batch of ‖x − t_x‖² / D`, D = values per sample.
pub fn transport_cost<const D: usize>(x: Tensor<D>, t_x: Tensor<D>) -> Tensor<1> {
    (x - t_x).powi_scalar(2).mean().reshape([1])
}

/// `L_f = mean f(T(x)) − w · mean f(y)`: minimizing it teaches f to score real targets
/// above mapped digits (the inner maximization of NOT's saddle-point problem). w = 1 is
/// complete transport; w > 1 is incomplete (extremal) transport, where T(x) need cover only
/// a 1/w share of the targets, the one nearest the inputs, and f must be ≤ 0
/// ([`nonpositive`]) for the dual to be bounded.
pub fn potential_loss(f_t_x: Tensor<2>, f_y: Tensor<2>, w: f64) -> Tensor<1> {
    f_t_x.mean() - f_y.mean().mul_scalar(w)
}

/// What an f-step minimizes: [`potential_loss`] with target weight `w`, plus the drift
/// penalty `drift · (mean f(T(x))² + mean f(y)²)` when `drift` > 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PotentialObjective {
    /// Target weight w ≥ 1 (1: complete transport).
    pub w: f64,
    /// ε ≥ 0 of the drift penalty (0: NOT's plain dual).
    pub drift: f64,
}

impl PotentialObjective {
    /// NOT's own f-step: complete transport, no penalty.
    pub const COMPLETE: Self = Self { w: 1.0, drift: 0.0 };
}

/// `drift · (mean f(T(x))² + mean f(y)²)`. NOT's dual is unbounded while T lags behind f:
/// a fast potential (lr_f 1e-3) scores targets and mapped digits thousands apart, and the
/// T-step's `− f(T(x))` then drowns the cost and the anchor (scores of ±1000 where the cost
/// is ~0.01). With the penalty, f's best scores for two sets it tells apart are ±1/(2·drift),
/// so drift sets the scale f works at (the "drift" term of progressive GANs' critics).
pub fn drift_penalty(f_t_x: Tensor<2>, f_y: Tensor<2>, drift: f64) -> Tensor<1> {
    (f_t_x.powi_scalar(2).mean() + f_y.powi_scalar(2).mean()).mul_scalar(drift)
}

/// A potential's raw score made ≤ 0 (`−softplus`), as incomplete transport's dual asks;
/// with w = 1 the constraint changes nothing (f is defined up to a constant), so the strong
/// recipe keeps the raw score.
pub fn nonpositive(raw: Tensor<2>) -> Tensor<2> {
    burn::tensor::activation::softplus(raw, 1.0).neg()
}

/// The score f gives `v`: raw for complete transport (w = 1), [`nonpositive`] otherwise.
pub fn constrained_score(raw: Tensor<2>, w: f64) -> Tensor<2> {
    if w == 1.0 { raw } else { nonpositive(raw) }
}

/// `L_T = cost − mean f(T(x))`.
pub fn transport_loss(cost: Tensor<1>, f_t_x: Tensor<2>) -> Tensor<1> {
    cost - f_t_x.mean()
}

/// Each of `x`'s B digits repeated `draws` times in a row: `[B·draws, C, D, H, W]`, the
/// layout [`weak_cost_terms`] expects for T(x, z).
pub fn repeat_draws(x: Tensor<5>, draws: usize) -> Tensor<5> {
    let [b, c, d, h, w] = x.dims();
    x.reshape([b, 1, c * d * h * w])
        .repeat_dim(1, draws)
        .reshape([b * draws, c, d, h, w])
}

/// The weak cost's terms for `x: [B, …]` and `t_xz: [B·Z, …]` (the Z draws of one x in a
/// row): `(mean ‖x − T(x,z)‖²/D, mean ‖T(x,z) − mean_z' T(x,z')‖²/D)`, the transport cost
/// and the spread (conditional variance) that γ rewards.
pub fn weak_cost_terms(x: Tensor<5>, t_xz: Tensor<5>, draws: usize) -> (Tensor<1>, Tensor<1>) {
    let [b, c, d, h, w] = x.dims();
    let x = x.reshape([b, 1, c * d * h * w]);
    let cost = (t_xz.clone().reshape([b, draws, c * d * h * w]) - x)
        .powi_scalar(2)
        .mean()
        .reshape([1]);
    (cost, draw_spread(t_xz, draws))
}

/// Added under the square root of a distance, so its gradient stays finite where two draws
/// (or a draw and its input) coincide; 1e-12 moves a per-value distance by at most 1e-6.
const DISTANCE_EPS: f64 = 1e-12;

/// The distance kernel's terms for `x: [B, …]` and `t_xz: [B·Z, …]` (the Z draws of one x
/// in a row): `(mean_z ‖x − T(x,z)‖/√D, ½ · mean_{z≠z'} ‖T(x,z) − T(x,z')‖/√D)`, the
/// transport cost and the spread that γ rewards (cost − γ · spread is the γ-weak
/// energy-distance kernel cost, up to a factor 2).
pub fn distance_cost_terms(x: Tensor<5>, t_xz: Tensor<5>, draws: usize) -> (Tensor<1>, Tensor<1>) {
    let [b, c, d, h, w] = x.dims();
    let n = c * d * h * w;
    let t = t_xz.reshape([b, draws, n]);
    let per_value = |v: Tensor<3>| {
        v.powi_scalar(2)
            .mean_dim(2)
            .add_scalar(DISTANCE_EPS)
            .sqrt()
            .mean()
    };
    let cost = per_value(t.clone() - x.reshape([b, 1, n])).reshape([1]);
    // Each shift k pairs draw i with draw i + k (mod Z): shifts 1..Z cover every ordered
    // pair z ≠ z' once, with B·Z·n values per shift instead of B·Z²·n at once.
    let shifted_means = (1..draws)
        .map(|k| {
            let rolled = Tensor::cat(
                vec![t.clone().narrow(1, k, draws - k), t.clone().narrow(1, 0, k)],
                1,
            );
            per_value(t.clone() - rolled).reshape([1])
        })
        .collect::<Vec<_>>();
    let spread = Tensor::cat(shifted_means, 0)
        .mean()
        .mul_scalar(0.5)
        .reshape([1]);
    (cost, spread)
}

/// `mean ‖T(x,z) − mean_z' T(x,z')‖²/D` for `t_xz: [B·Z, …]` (the Z draws of one x in a
/// row): how far a map's draws spread around their mean, per x.
pub fn draw_spread(t_xz: Tensor<5>, draws: usize) -> Tensor<1> {
    let [bz, c, d, h, w] = t_xz.dims();
    let t = t_xz.reshape([bz / draws, draws, c * d * h * w]);
    (t.clone() - t.mean_dim(1))
        .powi_scalar(2)
        .mean()
        .reshape([1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn scalar(t: Tensor<1>) -> f32 {
        t.into_scalar::<f32>()
    }

    #[test]
    fn cost_is_mean_squared_difference_per_value() {
        let device = Device::flex();
        // Two samples of 2 values each (shape [2,1,1,1,2]): differences (1, 3) and (0, 2).
        let x = Tensor::<1>::from_data(TensorData::from([1.0f32, 3.0, 0.0, 2.0]), &device)
            .reshape([2, 1, 1, 1, 2]);
        let t_x = Tensor::<5>::zeros([2, 1, 1, 1, 2], &device);
        // (1 + 9)/2 = 5 and (0 + 4)/2 = 2 → mean 3.5
        assert_eq!(scalar(transport_cost(x, t_x)), 3.5);
    }

    #[test]
    fn potential_and_transport_losses_by_hand() {
        let device = Device::flex();
        let f_t_x =
            Tensor::<1>::from_data(TensorData::from([1.0f32, 3.0]), &device).reshape([2, 1]);
        let f_y =
            Tensor::<1>::from_data(TensorData::from([-2.0f32, 0.0, 5.0]), &device).reshape([3, 1]);
        assert_eq!(
            scalar(potential_loss(f_t_x.clone(), f_y.clone(), 1.0)),
            2.0 - 1.0
        );
        // w = 4: 2 − 4 · 1.
        assert_eq!(scalar(potential_loss(f_t_x.clone(), f_y, 4.0)), 2.0 - 4.0);
        let cost = Tensor::<1>::from_data(TensorData::from([0.5f32]), &device);
        assert_eq!(scalar(transport_loss(cost, f_t_x)), 0.5 - 2.0);
    }

    #[test]
    fn drift_penalty_by_hand_and_its_optimum() {
        let device = Device::flex();
        let f_t_x =
            Tensor::<1>::from_data(TensorData::from([1.0f32, 3.0]), &device).reshape([2, 1]);
        let f_y =
            Tensor::<1>::from_data(TensorData::from([-2.0f32, 0.0, 5.0]), &device).reshape([3, 1]);
        // 0.5 · ((1 + 9)/2 + (4 + 0 + 25)/3) = 0.5 · (5 + 29/3).
        let got = scalar(drift_penalty(f_t_x, f_y, 0.5));
        assert!((got - 0.5 * (5.0 + 29.0 / 3.0)).abs() < 1e-5, "{got}");
        // For two sets f tells apart, L_f + penalty is least at f(T(x)) = −1/(2ε), f(y) =
        // 1/(2ε): the scores stay bounded where L_f alone has no minimum.
        let eps = 10.0;
        let total = |a: f32, b: f32| {
            let f_t_x = Tensor::<1>::from_data(TensorData::from([a]), &device).reshape([1, 1]);
            let f_y = Tensor::<1>::from_data(TensorData::from([b]), &device).reshape([1, 1]);
            scalar(potential_loss(f_t_x.clone(), f_y.clone(), 1.0) + drift_penalty(f_t_x, f_y, eps))
        };
        let best = total(-0.05, 0.05);
        assert!((best - (-0.05)).abs() < 1e-6, "{best}");
        for (a, b) in [(-0.04, 0.05), (-0.06, 0.05), (-0.05, 0.07), (-1.0, 1.0)] {
            assert!(total(a, b) > best, "({a}, {b}) beats the optimum");
        }
    }

    #[test]
    fn incomplete_transport_scores_are_nonpositive_and_complete_ones_raw() {
        let device = Device::flex();
        let raw = Tensor::<1>::from_data(TensorData::from([-30.0f32, 0.0, 2.0, 40.0]), &device)
            .reshape([4, 1]);
        let values = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(
            values(constrained_score(raw.clone(), 1.0)),
            values(raw.clone())
        );
        let scored = values(constrained_score(raw, 2.0));
        // −log(1 + e^v): about −e^−30, −ln 2, −2.127, −40; order kept, all ≤ 0.
        let expected = [
            -(-30.0f32).exp(),
            -(2.0f32).ln(),
            -(1.0 + 2.0f32.exp()).ln(),
            -40.0,
        ];
        for (got, want) in scored.iter().zip(expected) {
            assert!((got - want).abs() < 1e-5, "{got} vs {want}");
            assert!(*got <= 0.0);
        }
        assert!(scored.windows(2).all(|p| p[0] > p[1]));
    }

    #[test]
    fn weak_cost_terms_by_hand() {
        let device = Device::flex();
        // Two digits of one value each, x = (1, 10), two draws each.
        let x = Tensor::<1>::from_data(TensorData::from([1.0f32, 10.0]), &device)
            .reshape([2, 1, 1, 1, 1]);
        let repeated = repeat_draws(x.clone(), 2);
        assert_eq!(
            repeated.clone().into_data().try_to_vec::<f32>().unwrap(),
            [1.0, 1.0, 10.0, 10.0]
        );
        // T(x, z): (0, 4) for x = 1 and (10, 10) for x = 10.
        let t_xz = Tensor::<1>::from_data(TensorData::from([0.0f32, 4.0, 10.0, 10.0]), &device)
            .reshape([4, 1, 1, 1, 1]);
        let (cost, spread) = weak_cost_terms(x, t_xz, 2);
        // Squared distances 1, 9, 0, 0 → 2.5; spreads: mean 2 → (4 + 4)/2 = 4 and 0 → 2.
        assert_eq!(scalar(cost), 2.5);
        assert_eq!(scalar(spread), 2.0);
    }

    #[test]
    fn distance_cost_terms_by_hand() {
        let device = Device::flex();
        // Two digits of two values each; x = (0, 0) and (1, 1).
        let x = Tensor::<1>::from_data(TensorData::from([0.0f32, 0.0, 1.0, 1.0]), &device)
            .reshape([2, 1, 1, 1, 2]);
        // Three draws each: (3, 4), (0, 0), (3, 4) for x = (0, 0); (1, 1) three times.
        let t_xz = Tensor::<1>::from_data(
            TensorData::from([
                3.0f32, 4.0, 0.0, 0.0, 3.0, 4.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0,
            ]),
            &device,
        )
        .reshape([6, 1, 1, 1, 2]);
        let (cost, spread) = distance_cost_terms(x, t_xz, 3);
        // Per-value distances √(‖·‖²/2): 5/√2, 0, 5/√2 to x, and 0 three times → mean 10/(6√2).
        let root2 = 2f32.sqrt();
        assert!((scalar(cost) - 10.0 / (6.0 * root2)).abs() < 1e-5);
        // Ordered pairs z ≠ z': 4 of the 6 pairs of the first digit are 5/√2 apart, the
        // second digit's 6 are 0 → mean (4·5/√2)/12, halved.
        assert!((scalar(spread) - 0.5 * 20.0 / (12.0 * root2)).abs() < 1e-5);
    }

    #[test]
    fn distance_spread_pushes_coinciding_draws_apart() {
        // Where the quadratic spread's gradient vanishes with the spread, the distance's
        // does not: two draws 1e-4 apart get a unit-size push.
        let device = Device::flex().autodiff();
        let grad_of = |distance: bool| {
            let x = Tensor::<5>::zeros([1, 1, 1, 1, 1], &device);
            let t_xz = Tensor::<1>::from_data(TensorData::from([0.5f32, 0.5001]), &device)
                .reshape([2, 1, 1, 1, 1])
                .require_grad();
            let (_, spread) = if distance {
                distance_cost_terms(x, t_xz.clone(), 2)
            } else {
                weak_cost_terms(x, t_xz.clone(), 2)
            };
            let grads = spread.backward();
            let g = t_xz
                .grad(&grads)
                .unwrap()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            (g[1] - g[0]).abs()
        };
        assert!(grad_of(true) > 0.4, "{}", grad_of(true));
        assert!(grad_of(false) < 1e-3, "{}", grad_of(false));
    }
}
