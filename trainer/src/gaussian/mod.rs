//! Known-answer benchmark: NOT between two Gaussians, whose quadratic-cost OT map is linear
//! and known in closed form, scored by the unexplained variance L2-UV (Korotin et al. 2021).

pub mod nets;
pub mod problem;
pub mod report;
pub mod solver;
