//! An exponential moving average of a module's parameters (Polyak averaging of the iterates).

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::Tensor;

/// The running average `a ← d·a + (1 − d)·θ` of every float parameter θ of a module, in
/// the module's visiting order, with the decay warmed up as `min(d, (1 + n)/(10 + n))` after
/// n updates, so the average does not cling to the initial weights in a short run.
pub struct ParamAverage {
    decay: f64,
    updates: u64,
    values: Vec<Tensor<1>>,
}

struct Collect(Vec<Tensor<1>>);

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        // Off the autodiff graph: the running average must not chain one node per update.
        let value = param.val().inner();
        let len = value.shape().num_elements();
        self.0.push(value.reshape([len]));
    }
}

fn parameters<M: Module>(module: &M) -> Vec<Tensor<1>> {
    let mut collect = Collect(Vec::new());
    module.visit(&mut collect);
    collect.0
}

struct Replace<'a> {
    values: &'a [Tensor<1>],
    next: usize,
}

impl ModuleMapper for Replace<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let value = self.values[self.next].clone();
        self.next += 1;
        param.map(|tensor| {
            let average = value.reshape(tensor.shape());
            let average = if tensor.is_autodiff() {
                Tensor::from_inner(average)
            } else {
                average
            };
            if tensor.is_require_grad() {
                average.require_grad()
            } else {
                average
            }
        })
    }
}

impl ParamAverage {
    /// Starts the average at `module`'s parameters; `decay` must be in [0, 1).
    pub fn new<M: Module>(module: &M, decay: f64) -> Self {
        assert!((0.0..1.0).contains(&decay), "decay {decay} not in [0, 1)");
        Self {
            decay,
            updates: 0,
            values: parameters(module),
        }
    }

    /// An average that has folded in `updates` iterates so far and whose values are
    /// `average`'s parameters (a checkpoint's averaged module): updating it continues
    /// exactly as the original would have.
    pub fn resume<M: Module>(average: &M, decay: f64, updates: u64) -> Self {
        Self {
            updates,
            ..Self::new(average, decay)
        }
    }

    /// Iterates folded in so far.
    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// Folds `module`'s current parameters (the same module, trained further) into the
    /// average.
    pub fn update<M: Module>(&mut self, module: &M) {
        let current = parameters(module);
        assert_eq!(current.len(), self.values.len(), "one module's parameters");
        self.updates += 1;
        let n = self.updates as f64;
        let decay = self.decay.min((1.0 + n) / (10.0 + n));
        for (average, value) in self.values.iter_mut().zip(current) {
            *average = average
                .clone()
                .mul_scalar(decay)
                .add(value.mul_scalar(1.0 - decay));
        }
    }

    /// `module` with its parameters replaced by their averages.
    pub fn apply<M: Module>(&self, module: M) -> M {
        let mut replace = Replace {
            values: &self.values,
            next: 0,
        };
        let module = module.map(&mut replace);
        assert_eq!(replace.next, self.values.len(), "one module's parameters");
        module
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::Device;

    fn weights(linear: &Linear) -> Vec<f32> {
        parameters(linear)
            .into_iter()
            .flat_map(|t| t.into_data().try_to_vec::<f32>().unwrap())
            .collect()
    }

    fn filled(linear: &Linear, value: f32) -> Linear {
        let values: Vec<Tensor<1>> = parameters(linear)
            .into_iter()
            .map(|t| t.zeros_like().add_scalar(value))
            .collect();
        let replace = ParamAverage {
            decay: 0.0,
            updates: 0,
            values,
        };
        replace.apply(linear.clone())
    }

    #[test]
    fn the_average_follows_the_warmed_up_decay() {
        let device = Device::flex();
        let linear = LinearConfig::new(3, 2).init(&device);
        let zero = filled(&linear, 0.0);
        let mut average = ParamAverage::new(&zero, 0.5);
        // Update 1: decay min(0.5, 2/11) = 2/11, so the average moves 9/11 of the way to 1.
        average.update(&filled(&linear, 1.0));
        let once = weights(&average.apply(linear.clone()));
        assert_eq!(once.len(), 3 * 2 + 2, "weight and bias");
        assert!(
            once.iter().all(|v| (v - 9.0 / 11.0).abs() < 1e-6),
            "{once:?}"
        );
        // Update 2: decay min(0.5, 3/12) = 1/4 toward 3.
        average.update(&filled(&linear, 3.0));
        let twice = weights(&average.apply(linear.clone()));
        let expected = 0.25 * 9.0 / 11.0 + 0.75 * 3.0;
        assert!(
            twice.iter().all(|v| (v - expected).abs() < 1e-5),
            "{twice:?}"
        );
        // Later updates use the decay itself: 0.5 once (n + 1)/(n + 10) passes it (n ≥ 8).
        for _ in 3..=8 {
            average.update(&filled(&linear, 3.0));
        }
        let before: f32 = weights(&average.apply(linear.clone()))[0];
        average.update(&filled(&linear, 5.0));
        let after = weights(&average.apply(linear.clone()))[0];
        assert!(
            (after - (0.5 * before + 2.5)).abs() < 1e-5,
            "{before} {after}"
        );
    }

    #[test]
    fn a_resumed_average_continues_exactly() {
        let device = Device::flex();
        let linear = LinearConfig::new(3, 2).init(&device);
        let mut straight = ParamAverage::new(&filled(&linear, 0.0), 0.9);
        for value in [1.0, 2.0] {
            straight.update(&filled(&linear, value));
        }
        // Saved as a module after two updates, then resumed.
        let saved = straight.apply(linear.clone());
        let mut resumed = ParamAverage::resume(&saved, 0.9, straight.updates());
        assert_eq!(resumed.updates(), 2);
        for value in [5.0, 7.0] {
            straight.update(&filled(&linear, value));
            resumed.update(&filled(&linear, value));
        }
        assert_eq!(
            weights(&straight.apply(linear.clone())),
            weights(&resumed.apply(linear.clone()))
        );
    }

    #[test]
    fn applying_keeps_trainable_parameters_trainable() {
        let device = Device::flex().autodiff();
        let linear = LinearConfig::new(3, 2).init(&device);
        let average = ParamAverage::new(&linear, 0.9);
        let averaged = average.apply(linear.clone());
        assert!(averaged.weight.val().is_require_grad());
        assert!(averaged.weight.val().is_autodiff());
        assert!(
            !average.values[0].is_autodiff(),
            "the average is kept off the graph"
        );
        assert_eq!(weights(&averaged), weights(&linear));
    }
}
