//! Judging maps: the 3D digit classifier, the metrics, `ot3d eval` and `ot3d figure`.

pub mod baseline;
pub mod classifier_train;
pub mod evaluate;
pub mod figures;
pub mod metrics;
pub mod report;
pub mod report_spec;
