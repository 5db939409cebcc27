//! The two NOT updates, shared by the training loop, the warm start, `ot3d bench` and the
//! Gaussian known-answer benchmark: an f-step (T fixed) and a strong-cost T-step (f fixed),
//! generic over the networks, with the voxel networks' versions.

use super::losses::{
    PotentialObjective, constrained_score, drift_penalty, potential_loss, transport_cost,
    transport_loss,
};
use super::replicas::{Replicas, Share, ShareLoss};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::tensor::Tensor;
use ot3d_models::nets::{Potential, TransportMap};

/// The f-step's update on any potential: minimizes `L_f = mean f(t_x) − w · mean f(y)`
/// (plus the objective's drift penalty), where `t_x` is the map's output already detached
/// (w = 1: complete transport), over `replicas`' devices. Returns the updated f and L_f
/// (without the penalty, so logs compare across drifts).
#[allow(clippy::too_many_arguments)]
pub fn potential_update<F: Module + Sync, const D: usize>(
    f: F,
    score: impl Fn(&F, Tensor<D>) -> Tensor<2> + Sync,
    optimizer: &mut ModuleOptimizer,
    lr: f64,
    t_x: Tensor<D>,
    y: Tensor<D>,
    objective: PotentialObjective,
    replicas: &Replicas,
) -> (F, f64) {
    let (grads, reported) = replicas.grads(&f, |f, share| {
        let (f_t_x, f_y) = scores_of_both(f, &score, share.of(&t_x), share.of(&y));
        let loss = potential_loss(f_t_x.clone(), f_y.clone(), objective.w);
        let minimized = if objective.drift > 0.0 {
            loss.clone() + drift_penalty(f_t_x, f_y, objective.drift)
        } else {
            loss.clone()
        };
        ShareLoss {
            objective: minimized,
            reported: vec![loss],
        }
    });
    let f = optimizer.step(lr, f, grads);
    (f, reported[0])
}

/// `(score(f, a), score(f, b))` from one forward of f over `[a; b]`: the potentials score
/// each sample on its own, so this is the same as two forwards, while the kernels get twice
/// the samples per call and the step half the calls (f-steps 3–12% faster at batch 16 and
/// 64, `ot3d bench steps`, interleaved, Intel Xeon 2 cores).
fn scores_of_both<F, const D: usize>(
    f: &F,
    score: impl Fn(&F, Tensor<D>) -> Tensor<2>,
    a: Tensor<D>,
    b: Tensor<D>,
) -> (Tensor<2>, Tensor<2>) {
    let (n, m) = (a.dims()[0], b.dims()[0]);
    let both = score(f, Tensor::cat(vec![a, b], 0));
    (both.clone().narrow(0, 0, n), both.narrow(0, n, m))
}

/// The strong-cost T-step's update on any map: minimizes
/// `L_T = mean ‖x − T(x)‖²/D − mean f(T(x))` with f fixed (`score_fixed` must use a
/// `no_grad` potential, so backward computes only the gradient through f's input; it gets
/// the share's device to find its copy of f there), over `replicas`' devices. Returns the
/// updated T, L_T and the transport cost.
pub fn transport_update<T: Module + Sync, const D: usize>(
    t: T,
    map: impl Fn(&T, Tensor<D>) -> Tensor<D> + Sync,
    score_fixed: impl Fn(Tensor<D>, &Share) -> Tensor<2> + Sync,
    optimizer: &mut ModuleOptimizer,
    lr: f64,
    x: Tensor<D>,
    replicas: &Replicas,
) -> (T, f64, f64) {
    let (grads, reported) = replicas.grads(&t, |t, share| {
        let x = share.of(&x);
        let t_x = map(t, x.clone());
        let cost = transport_cost(x, t_x.clone());
        let loss = transport_loss(cost.clone(), score_fixed(t_x, share));
        ShareLoss {
            objective: loss.clone(),
            reported: vec![loss, cost],
        }
    });
    let t = optimizer.step(lr, t, grads);
    (t, reported[0], reported[1])
}

/// The voxel potential's score of `v` for target weight `w` ([`constrained_score`]).
pub fn score(f: &Potential, v: Tensor<5>, w: f64) -> Tensor<2> {
    constrained_score(f.forward(v), w)
}

/// One f-step on the voxel networks: T(x, z) computed off the autodiff graph (no gradient
/// reaches T), then [`potential_update`] with `objective`. Returns the updated f and L_f.
#[allow(clippy::too_many_arguments)]
pub fn f_step(
    t: &TransportMap,
    f: Potential,
    optimizer: &mut ModuleOptimizer,
    lr: f64,
    x: Tensor<5>,
    y: Tensor<5>,
    z: Option<Tensor<5>>,
    objective: PotentialObjective,
    replicas: &Replicas,
) -> (Potential, f64) {
    let t_x = untracked_map(t, x, z);
    let w = objective.w;
    potential_update(
        f,
        |f, v| score(f, v, w),
        optimizer,
        lr,
        t_x,
        y,
        objective,
        replicas,
    )
}

/// `T(x, z)` without recording T's graph. `detach()` on T's output would cut it from the
/// graph, but the forward pass would still have recorded its activations for a backward
/// that never comes, and burn keeps them: ~45 MiB per f-step at batch 32, 13 GiB over a
/// 300-step potential warm-up. T runs on the inner backend instead (faster, too), and its
/// output comes back as a constant of the caller's autodiff device.
pub fn untracked_map(t: &TransportMap, x: Tensor<5>, z: Option<Tensor<5>>) -> Tensor<5> {
    let tracked = x.is_autodiff();
    let out = t.valid().forward(x.inner(), z.map(Tensor::inner));
    if tracked { out.autodiff() } else { out }
}

/// The fixed potential `f_fixed` (a `no_grad` one, on the main device) where `share` runs.
pub fn fixed_on(f_fixed: &Potential, share: &Share) -> Potential {
    if share.count == 1 {
        f_fixed.clone()
    } else {
        f_fixed.clone().to_device(&share.device)
    }
}

/// One strong-cost T-step on the voxel networks ([`transport_update`]) against the
/// potential trained with target weight `w`. `f_fixed` must be `f.no_grad()`. Returns the
/// updated T, L_T and the transport cost.
#[allow(clippy::too_many_arguments)]
pub fn t_step(
    t: TransportMap,
    f_fixed: &Potential,
    optimizer: &mut ModuleOptimizer,
    lr: f64,
    x: Tensor<5>,
    w: f64,
    replicas: &Replicas,
) -> (TransportMap, f64, f64) {
    transport_update(
        t,
        |t, x| t.forward(x, None),
        |t_x, share| score(&fixed_on(f_fixed, share), t_x, w),
        optimizer,
        lr,
        x,
        replicas,
    )
}

/// One strong-cost T-step anchored to exact-OT pairs: minimizes
/// `L_T + λ ‖T(x) − y‖²/D` for pairs (x, y), so the potential sharpens T(x) while the
/// pairing keeps it where the warm start put it. Returns the updated T, L_T (without the
/// anchor term), the transport cost and the anchor term's ‖T(x) − y‖²/D.
#[allow(clippy::too_many_arguments)]
pub fn anchored_t_step(
    t: TransportMap,
    f_fixed: &Potential,
    optimizer: &mut ModuleOptimizer,
    lr: f64,
    x: Tensor<5>,
    y: Tensor<5>,
    anchor: f64,
    w: f64,
    replicas: &Replicas,
) -> (TransportMap, f64, f64, f64) {
    let (grads, reported) = replicas.grads(&t, |t, share| {
        let (x, y) = (share.of(&x), share.of(&y));
        let t_x = t.forward(x.clone(), None);
        let cost = transport_cost(x, t_x.clone());
        let fit = (t_x.clone() - y).powi_scalar(2).mean();
        let not_loss = transport_loss(cost.clone(), score(&fixed_on(f_fixed, share), t_x, w));
        ShareLoss {
            objective: not_loss.clone() + fit.clone().mul_scalar(anchor),
            reported: vec![not_loss, cost, fit],
        }
    });
    let t = optimizer.step(lr, t, grads);
    (t, reported[0], reported[1], reported[2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::with_seed;
    use crate::gaussian::nets::MlpConfig;
    use burn::module::{ModuleVisitor, Param};
    use burn::optim::{AdamConfig, GradientsParams};
    use burn::tensor::Device;

    const STEPS: usize = 60;

    /// 64 points on a circle of radius 0.1 around (c, c): two such clusters are separable.
    fn cluster(center: f32, device: &Device) -> Tensor<2> {
        let points: Vec<f32> = (0..64)
            .flat_map(|i| {
                let angle = i as f32 * std::f32::consts::TAU / 64.0;
                [center + 0.1 * angle.cos(), center + 0.1 * angle.sin()]
            })
            .collect();
        Tensor::<1>::from_floats(points.as_slice(), device).reshape([64, 2])
    }

    /// [`STEPS`] f-steps at lr 1e-2 between two clusters f tells apart at once, from one
    /// seeded potential: L_f and the largest score.
    fn separate(drift: f64) -> (f64, f32) {
        let device = Device::flex().autodiff();
        let mut f = with_seed(&device, 7, || {
            MlpConfig::new(2)
                .with_hidden(16)
                .with_layers(2)
                .init_potential(&device)
        });
        let mut optimizer = AdamConfig::new().init();
        let objective = PotentialObjective { w: 1.0, drift };
        let mut l_f = 0.0;
        for _ in 0..STEPS {
            (f, l_f) = potential_update(
                f,
                |f, v| f.forward(v),
                &mut optimizer,
                1e-2,
                cluster(-1.0, &device),
                cluster(1.0, &device),
                objective,
                &Replicas::single(&device),
            );
        }
        let both = Tensor::cat(vec![cluster(-1.0, &device), cluster(1.0, &device)], 0);
        (l_f, f.forward(both).abs().max().into_scalar::<f32>())
    }

    #[test]
    fn the_drift_penalty_holds_a_fast_potential_at_its_scale() {
        // Without it, f's scores grow with every step: NOT's dual has no maximum here.
        let (plain, plain_max) = separate(0.0);
        assert!(plain < -20.0, "plain L_f {plain}");
        // With ε = 1 the optimum is f = ∓1/2 on the two clusters, L_f = −1.
        let (held, held_max) = separate(1.0);
        assert!((held + 1.0).abs() < 0.1, "L_f with drift 1: {held}");
        assert!(held_max < 1.0, "largest |score| with drift 1: {held_max}");
        assert!(plain_max > 10.0 * held_max, "{plain_max} vs {held_max}");
    }

    /// One forward over `[a; b]` gives each half the scores, and f the gradient, of two
    /// forwards: the voxel potential scores each digit on its own.
    #[test]
    fn scoring_both_batches_at_once_equals_two_forwards() {
        use ot3d_models::nets::PotentialConfig;
        let device = Device::flex().autodiff();
        let f = with_seed(&device, 3, || {
            PotentialConfig::new()
                .with_width(2)
                .with_stages(2)
                .init(&device)
        });
        let batch = |seed: u64, n: usize| {
            let mut rng = ot3d_models::rng::SeedRng::new(seed);
            let values: Vec<f32> = (0..n * 3 * 16 * 16 * 16)
                .map(|_| rng.uniform_f32())
                .collect();
            Tensor::<1>::from_floats(values.as_slice(), &device).reshape([n, 3, 16, 16, 16])
        };
        let (a, b) = (batch(1, 3), batch(2, 2));
        let score = |f: &Potential, v: Tensor<5>| f.forward(v);
        let (both_a, both_b) = scores_of_both(&f, score, a.clone(), b.clone());
        let (one_a, one_b) = (f.forward(a), f.forward(b));
        let values = |t: &Tensor<2>| t.to_data().try_to_vec::<f32>().unwrap();
        assert_eq!(both_a.dims(), [3, 1]);
        assert_eq!(both_b.dims(), [2, 1]);
        let close = |x: Vec<f32>, y: Vec<f32>, what: &str| {
            assert_eq!(x.len(), y.len(), "{what}");
            for (p, q) in x.iter().zip(&y) {
                assert!(
                    (p - q).abs() <= 1e-5 * (1.0 + q.abs()),
                    "{what}: {p} vs {q}"
                );
            }
        };
        close(values(&both_a), values(&one_a), "f(a)");
        close(values(&both_b), values(&one_b), "f(b)");
        // The gradient of f(a)·1 + f(b)·2 for every parameter of f, both ways.
        let gradient = |s_a: Tensor<2>, s_b: Tensor<2>| {
            let loss = s_a.sum() + s_b.sum().mul_scalar(2.0);
            let grads = GradientsParams::from_grads(loss.backward(), &f);
            struct Collect<'a>(&'a GradientsParams, Vec<f32>);
            impl ModuleVisitor for Collect<'_> {
                fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                    let grad = self.0.get::<D>(param.id).expect("a gradient per parameter");
                    self.1.extend(grad.into_data().try_to_vec::<f32>().unwrap());
                }
            }
            let mut collect = Collect(&grads, Vec::new());
            f.visit(&mut collect);
            collect.1
        };
        let (a, b) = (batch(1, 3), batch(2, 2));
        let together = gradient(both_a, both_b);
        let apart = gradient(f.forward(a), f.forward(b));
        assert!(!together.is_empty());
        close(together, apart, "gradients");
    }
}
