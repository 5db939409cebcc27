//! The Gaussian benchmark's record (`ot3d bench gaussian --json`), its L2-UV curves as a
//! figure and its section of docs/results.md.

use super::solver::{GaussianNotConfig, GaussianRow};
use crate::eval::figures::{CurvePanel, stacked_panels};
use ot3d_models::render::RgbImage;
use serde::{Deserialize, Serialize};

/// L2-UV (%) the benchmark aims at for d ≤ 64 (issue 8).
pub const GOAL_PERCENT: f64 = 1.0;

/// One dimension: the settings it ran with and what it measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GaussianEntry {
    pub config: GaussianNotConfig,
    pub row: GaussianRow,
}

/// One panel per dimension: L2-UV (%) against outer steps.
pub fn curves_figure(entries: &[GaussianEntry]) -> RgbImage {
    let panels: Vec<_> = entries
        .iter()
        .map(|e| {
            CurvePanel::new(
                format!("d = {}: L2-UV (%) vs outer step", e.row.dim),
                e.row.curve.iter().map(|p| p.step as f64).collect(),
                e.row.curve.iter().map(|p| p.l2_uv_percent).collect(),
                [120, 200, 255],
            )
        })
        .collect();
    stacked_panels(&panels)
}

/// The docs/results.md section: a table per dimension and how to reproduce it.
pub fn markdown(entries: &[GaussianEntry], figure: Option<&str>) -> String {
    let mut out = String::from(
        "## Known-answer benchmark: Gaussians\n\n\
         Between N(μx, Σx) and N(μy, Σy) the quadratic-cost OT map is linear and known, \
         T*(x) = μy + A(x − μx) with A = Σx^-½(Σx^½ Σy Σx^½)^½ Σx^-½. The same NOT steps \
         the trainer runs (f-step, then K_T strong-cost T-steps) learn it with MLPs; \
         L2-UV = 100 · E‖T(x) − T*(x)‖² / Var(Y) on held-out samples, as in the \
         Wasserstein-2 benchmark of Korotin et al. 2021. Covariances are random rotations \
         of eigenvalues log-uniform in [1/4, 4]. Goal: L2-UV ≤ 1% for d ≤ 64.\n\n\
         | d | L2-UV (%) | identity map (%) | goal met | outer steps × K_T | batch | hidden × layers | T / f params | seconds |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for e in entries {
        let (c, r) = (&e.config, &e.row);
        let goal = if r.dim > 64 {
            "(d > 64)"
        } else if r.l2_uv_percent <= GOAL_PERCENT {
            "yes"
        } else {
            "no"
        };
        out.push_str(&format!(
            "| {} | {:.3} | {:.1} | {} | {} × {} | {} | {} × {} | {} / {} | {:.0} |\n",
            r.dim,
            r.l2_uv_percent,
            r.identity_l2_uv_percent,
            goal,
            c.steps,
            c.t_steps,
            c.batch,
            c.hidden,
            c.layers,
            r.t_params,
            r.f_params,
            r.seconds
        ));
    }
    if let Some(figure) = figure {
        out.push_str(&format!("\n![L2-UV curves]({figure})\n"));
    }
    out.push_str(
        "\nReproduce: `cargo xtask bench-gaussian` (or `ot3d bench gaussian --dims 2,16,64,256 \
         --json gaussian.json --figure gaussian.png`).\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gaussian::solver::CurvePoint;

    fn entry(dim: usize, uv: f64) -> GaussianEntry {
        GaussianEntry {
            config: GaussianNotConfig::new(),
            row: GaussianRow {
                dim,
                l2_uv_percent: uv,
                identity_l2_uv_percent: 80.0,
                t_params: 10,
                f_params: 20,
                seconds: 3.0,
                curve: vec![
                    CurvePoint {
                        step: 250,
                        seconds: 1.0,
                        l2_uv_percent: 5.0,
                    },
                    CurvePoint {
                        step: 500,
                        seconds: 2.0,
                        l2_uv_percent: uv,
                    },
                ],
            },
        }
    }

    #[test]
    fn the_table_says_which_dimensions_meet_the_goal() {
        let text = markdown(
            &[entry(2, 0.4), entry(64, 1.7), entry(256, 9.0)],
            Some("g.png"),
        );
        assert!(text.contains("| 2 | 0.400 | 80.0 | yes |"), "{text}");
        assert!(text.contains("| 64 | 1.700 | 80.0 | no |"), "{text}");
        assert!(text.contains("| 256 | 9.000 | 80.0 | (d > 64) |"), "{text}");
        assert!(text.contains("![L2-UV curves](g.png)"));
        let json = serde_json::to_string(&[entry(2, 0.4)]).unwrap();
        let back: Vec<GaussianEntry> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, vec![entry(2, 0.4)]);
    }

    #[test]
    fn the_figure_has_one_panel_per_dimension() {
        let image = curves_figure(&[entry(2, 0.4), entry(16, 0.8)]);
        assert_eq!(image.height, 480);
    }
}
