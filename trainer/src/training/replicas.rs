//! Data-parallel gradient steps: one replica of a network per device, each fed its share
//! of the batch, their gradients summed on the main device by burn-optim's
//! `GradientsParams::to_device` and `GradientsAccumulator` (burn-train's multi-device
//! strategy with the optimizer on the main device), then one optimizer step there.
//!
//! Every NOT loss (the transport cost, f's scores, the drift penalty, the anchor fit, the
//! weak cost's per-input terms) is a mean over the batch's samples, so weighting each
//! share's loss by its share of the batch makes the summed gradient the full batch's:
//! one data-parallel step equals one single-device step on the whole batch, up to float
//! rounding. burn 0.22's own collective (`all_reduce`, `DistributedContext`) is built only
//! for CUDA through NCCL; this path runs on every backend, the CPU included.

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Tensor};

/// The devices a step runs on: the first is the main one, which holds the networks, the
/// optimizers and the batches. Autodiff devices, like the training loop's.
#[derive(Debug, Clone)]
pub struct Replicas {
    devices: Vec<Device>,
}

/// One replica's part of a step: which share of the batch it takes, and where.
#[derive(Debug, Clone)]
pub struct Share {
    pub index: usize,
    pub count: usize,
    pub device: Device,
}

impl Share {
    /// This share's rows of `tensor` (split along dim 0 into `count` equal parts), on this
    /// share's device. With one share: `tensor` itself, untouched.
    pub fn of<const D: usize>(&self, tensor: &Tensor<D>) -> Tensor<D> {
        if self.count == 1 {
            return tensor.clone();
        }
        let rows = tensor.dims()[0];
        let (start, end) = (
            self.index * rows / self.count,
            (self.index + 1) * rows / self.count,
        );
        tensor.clone().slice(start..end).to_device(&self.device)
    }
}

/// What one share's loss closure gives back: the scalar to differentiate (a mean over the
/// share's samples) and the values to report (means too, e.g. L_f without its penalty).
pub struct ShareLoss {
    pub objective: Tensor<1>,
    pub reported: Vec<Tensor<1>>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ReplicasError {
    #[error("data-parallel training needs at least one device")]
    NoDevices,
    #[error(
        "batch size {batch} does not split evenly over {devices} devices: give a --batch-size that is a multiple of {devices}"
    )]
    UnevenBatch { batch: usize, devices: usize },
}

impl Replicas {
    /// One device: steps run exactly as without data parallelism.
    pub fn single(device: &Device) -> Self {
        Self {
            devices: vec![device.clone()],
        }
    }

    /// `devices` (autodiff ones), the first the main device; `batch` must split evenly
    /// over them, so every share weighs the same and sharded layouts (a weak-cost batch
    /// of B inputs × Z draws) cut between whole inputs.
    pub fn new(devices: Vec<Device>, batch: usize) -> Result<Self, ReplicasError> {
        if devices.is_empty() {
            return Err(ReplicasError::NoDevices);
        }
        if !batch.is_multiple_of(devices.len()) {
            return Err(ReplicasError::UnevenBatch {
                batch,
                devices: devices.len(),
            });
        }
        Ok(Self { devices })
    }

    pub fn len(&self) -> usize {
        self.devices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    pub fn main(&self) -> &Device {
        &self.devices[0]
    }

    /// The gradients of `module` for the whole batch, on the main device, and the reported
    /// values for the whole batch. Each share runs `loss` on its replica of `module` (forked
    /// to its device) and takes the gradient of its objective weighted by its share of the
    /// batch; with several devices the shares run on one thread each.
    pub fn grads<M>(
        &self,
        module: &M,
        loss: impl Fn(&M, &Share) -> ShareLoss + Sync,
    ) -> (GradientsParams, Vec<f64>)
    where
        M: Module + Sync,
    {
        let count = self.devices.len();
        if count == 1 {
            let share = Share {
                index: 0,
                count: 1,
                device: self.devices[0].clone(),
            };
            let out = loss(module, &share);
            let grads = GradientsParams::from_grads(out.objective.backward(), module);
            return (grads, out.reported.into_iter().map(scalar).collect());
        }
        let weight = 1.0 / count as f64;
        let per_share: Vec<(GradientsParams, Vec<f64>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .devices
                .iter()
                .enumerate()
                .map(|(index, device)| {
                    let loss = &loss;
                    let replica = module.clone().fork(device);
                    let share = Share {
                        index,
                        count,
                        device: device.clone(),
                    };
                    scope.spawn(move || {
                        let out = loss(&replica, &share);
                        let gradients = out.objective.mul_scalar(weight).backward();
                        let grads = GradientsParams::from_grads(gradients, &replica);
                        let reported = out.reported.into_iter().map(scalar).collect();
                        (grads, reported)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a replica's step panicked"))
                .collect()
        });
        let mut accumulator = GradientsAccumulator::<M>::new();
        let mut reported = Vec::new();
        for (grads, values) in per_share {
            accumulator.accumulate(module, grads.to_device(self.main(), module));
            if reported.is_empty() {
                reported = vec![0.0; values.len()];
            }
            for (sum, value) in reported.iter_mut().zip(values) {
                *sum += weight * value;
            }
        }
        (accumulator.grads(), reported)
    }
}

fn scalar(t: Tensor<1>) -> f64 {
    t.into_scalar::<f32>() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::with_seed;
    use crate::gaussian::nets::{MlpConfig, MlpPotential};
    use crate::training::losses::{PotentialObjective, drift_penalty, potential_loss};
    use crate::training::steps::potential_update;
    use burn::module::{ModuleVisitor, Param};
    use burn::optim::AdamConfig;
    use burn::tensor::Distribution;
    use std::sync::Mutex;

    fn potential(device: &Device) -> MlpPotential {
        with_seed(device, 11, || {
            MlpConfig::new(3)
                .with_hidden(8)
                .with_layers(2)
                .init_potential(device)
        })
    }

    fn rows(n: usize, seed: u64, device: &Device) -> Tensor<2> {
        device.seed(seed);
        Tensor::random([n, 3], Distribution::Normal(0.0, 1.0), device)
    }

    /// Every parameter's gradient in `grads`, in module order.
    fn gradient_values(module: &MlpPotential, grads: &GradientsParams) -> Vec<f32> {
        struct Collect<'a>(&'a GradientsParams, Vec<f32>);
        impl ModuleVisitor for Collect<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                let grad = self.0.get::<D>(param.id).expect("a gradient per parameter");
                self.1.extend(
                    grad.into_data()
                        .convert::<f32>()
                        .try_to_vec::<f32>()
                        .unwrap(),
                );
            }
        }
        let mut collect = Collect(grads, Vec::new());
        module.visit(&mut collect);
        collect.1
    }

    fn parameter_values(module: &MlpPotential) -> Vec<f32> {
        struct Collect(Vec<f32>);
        impl ModuleVisitor for Collect {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                self.0
                    .extend(param.val().into_data().try_to_vec::<f32>().unwrap());
            }
        }
        let mut collect = Collect(Vec::new());
        module.visit(&mut collect);
        collect.0
    }

    fn assert_close(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        let worst = a.iter().zip(b).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
        assert!(
            worst <= 1e-5 * scale,
            "{what}: differ by {worst} (scale {scale})"
        );
    }

    #[test]
    fn a_share_is_its_device_s_rows_and_one_share_is_the_whole_tensor() {
        let device = Device::flex().autodiff();
        let x = Tensor::<2>::from_floats([[0.0], [1.0], [2.0], [3.0], [4.0], [5.0]], &device);
        let values = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().unwrap();
        let share = |index, count| Share {
            index,
            count,
            device: device.clone(),
        };
        assert_eq!(
            values(share(0, 1).of(&x)),
            vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
        );
        assert_eq!(values(share(0, 2).of(&x)), vec![0.0, 1.0, 2.0]);
        assert_eq!(values(share(1, 2).of(&x)), vec![3.0, 4.0, 5.0]);
        assert_eq!(values(share(2, 3).of(&x)), vec![4.0, 5.0]);
    }

    #[test]
    fn a_batch_that_does_not_split_evenly_is_refused_with_the_fix() {
        let device = Device::flex().autodiff();
        let err = Replicas::new(vec![device.clone(); 3], 32).unwrap_err();
        assert_eq!(
            err,
            ReplicasError::UnevenBatch {
                batch: 32,
                devices: 3
            }
        );
        assert!(err.to_string().contains("multiple of 3"), "{err}");
        assert_eq!(
            Replicas::new(vec![], 32).unwrap_err(),
            ReplicasError::NoDevices
        );
        assert_eq!(Replicas::new(vec![device; 4], 32).unwrap().len(), 4);
    }

    /// The drift-penalized f-step objective of a batch, as the trainer minimizes it.
    fn f_objective(f: &MlpPotential, t_x: Tensor<2>, y: Tensor<2>) -> ShareLoss {
        let (f_t_x, f_y) = (f.forward(t_x), f.forward(y));
        let loss = potential_loss(f_t_x.clone(), f_y.clone(), 1.0);
        ShareLoss {
            objective: loss.clone() + drift_penalty(f_t_x, f_y, 1.0),
            reported: vec![loss],
        }
    }

    #[test]
    fn two_devices_give_the_gradient_of_the_whole_batch() {
        let device = Device::flex().autodiff();
        let f = potential(&device);
        let (t_x, y) = (rows(8, 1, &device), rows(8, 2, &device));
        let (whole, whole_loss) = Replicas::single(&device)
            .grads(&f, |f, share| f_objective(f, share.of(&t_x), share.of(&y)));
        // Each of the two replicas sees its own half of the batch.
        let seen = Mutex::new(Vec::new());
        let two = Replicas::new(vec![device.clone(), device.clone()], 8).unwrap();
        let (split, split_loss) = two.grads(&f, |f, share| {
            let (t_x, y) = (share.of(&t_x), share.of(&y));
            seen.lock().unwrap().push((share.index, t_x.dims()[0]));
            f_objective(f, t_x, y)
        });
        let mut seen = seen.into_inner().unwrap();
        seen.sort_unstable();
        assert_eq!(seen, vec![(0, 4), (1, 4)]);
        assert_close(
            &gradient_values(&f, &split),
            &gradient_values(&f, &whole),
            "gradients",
        );
        assert!(
            (split_loss[0] - whole_loss[0]).abs() < 1e-6,
            "{split_loss:?} {whole_loss:?}"
        );
        // Not trivially so: one half's gradient alone differs from the whole batch's.
        let (half, _) = Replicas::single(&device).grads(&f, |f, _| {
            let first = |t: &Tensor<2>| t.clone().slice(0..4);
            f_objective(f, first(&t_x), first(&y))
        });
        let (a, b) = (gradient_values(&f, &half), gradient_values(&f, &whole));
        assert!(a.iter().zip(&b).any(|(p, q)| (p - q).abs() > 1e-4));
    }

    #[test]
    fn one_synchronized_step_equals_one_step_on_the_concatenated_batch() {
        let device = Device::flex().autodiff();
        let (t_x, y) = (rows(8, 3, &device), rows(8, 4, &device));
        let objective = PotentialObjective { w: 1.0, drift: 1.0 };
        let step = |replicas: &Replicas| {
            let mut optimizer = AdamConfig::new().init();
            let mut f = potential(&device);
            let mut losses = Vec::new();
            for _ in 0..3 {
                let l_f;
                (f, l_f) = potential_update(
                    f,
                    |f, v| f.forward(v),
                    &mut optimizer,
                    1e-2,
                    t_x.clone(),
                    y.clone(),
                    objective,
                    replicas,
                );
                losses.push(l_f);
            }
            (parameter_values(&f), losses)
        };
        let (one, one_losses) = step(&Replicas::single(&device));
        let two = Replicas::new(vec![device.clone(), device.clone()], 8).unwrap();
        let (both, both_losses) = step(&two);
        assert_close(&both, &one, "weights after 3 steps");
        for (a, b) in both_losses.iter().zip(&one_losses) {
            assert!((a - b).abs() < 1e-6, "L_f {a} vs {b}");
        }
        assert_ne!(
            parameter_values(&potential(&device)),
            one,
            "the steps moved f"
        );
    }
}
