//! `ot3d figure`: pictures people would rather look at than read — source test digits of
//! each color above their maps, and a run's loss curves — as PNG.

use super::baseline::partner_each_color;
use crate::mapping::{MapError, MappedColor, map_draws, map_each_color};
use crate::training::log::StepRecord;
use crate::training::selection::SelectionRecord;
use crate::training::warm_start::WarmStartReport;
use burn::tensor::Device;
use font8x8::UnicodeFonts;
use ot3d_models::nets::TransportMap;
use ot3d_models::nets::weights::Manifest;
use ot3d_models::render::{RgbImage, render_voxels};
use ot3d_models::voxel::{DigitColor, GRID_LEN, VoxelGrid};
use std::path::PathBuf;

const LABEL: [u8; 3] = [220, 222, 228];
const PANEL: [u8; 3] = [12, 13, 16];

/// '→', which font8x8 lacks and figure titles use ("3 → 5"): one bit per pixel, the
/// leftmost pixel in the lowest bit, as font8x8's glyphs.
const RIGHT_ARROW: [u8; 8] = [0x00, 0x10, 0x20, 0x7F, 0x20, 0x10, 0x00, 0x00];

/// The 8×8 glyph of `ch`: ASCII, Latin-1 (×, …) and Greek (γ, …) from font8x8, '→' drawn
/// here; None for anything else.
fn glyph(ch: char) -> Option<[u8; 8]> {
    font8x8::BASIC_FONTS
        .get(ch)
        .or_else(|| font8x8::LATIN_FONTS.get(ch))
        .or_else(|| font8x8::GREEK_FONTS.get(ch))
        .or_else(|| (ch == '→').then_some(RIGHT_ARROW))
}

/// Writes `text` with its top-left corner at (x, y), 8×8 glyphs scaled by `scale`;
/// characters the font lacks are drawn as '?'.
pub fn draw_text(image: &mut RgbImage, x: i64, y: i64, text: &str, color: [u8; 3], scale: i64) {
    for (i, ch) in text.chars().enumerate() {
        let glyph = glyph(ch).or_else(|| glyph('?')).unwrap_or([0; 8]);
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                if bits & (1 << col) != 0 {
                    for dy in 0..scale {
                        for dx in 0..scale {
                            image.fill_pixel(
                                x + (i as i64 * 8 + col) * scale + dx,
                                y + row as i64 * scale + dy,
                                color,
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Width in pixels of `text` at `scale`.
pub fn text_width(text: &str, scale: i64) -> i64 {
    text.chars().count() as i64 * 8 * scale
}

/// Renders one digit's `3·16³` values. T's outputs are not clamped and may leave [0, 1]
/// a little; the picture shows them clamped (the numbers stay as they are elsewhere).
pub fn render_digit(values: &[f32], cell: usize) -> RgbImage {
    let clamped: Vec<f32> = values
        .iter()
        .map(|v| {
            if v.is_finite() {
                v.clamp(0.0, 1.0)
            } else {
                0.0
            }
        })
        .collect();
    let grid = VoxelGrid::from_vec(clamped).expect("a digit is 3·16³ values");
    render_voxels(&grid, cell)
}

/// What the map figure shows.
#[derive(Debug, Clone)]
pub struct MapFigure {
    pub mnist_dir: PathBuf,
    /// Source test digits per color.
    pub per_color: usize,
    pub seed: u64,
    /// Pixels per voxel edge.
    pub cell: usize,
    /// Show, between x and T(x), each input's exact discrete-OT partner among
    /// [`PARTNER_POOL`] training target digits of its color.
    pub partners: bool,
}

/// Test digits per color paired by exact OT with as many training digits in the partner
/// figure (the first `per_color` of them are shown), as in the page's baseline.
pub const PARTNER_POOL: usize = 256;

/// `per_color` random source test digits of each of the four colors, each input above its
/// map T(x) (and, with `partners`, its discrete-OT partner between them), one labeled block
/// of rows per color.
pub fn map_figure(
    t: &TransportMap,
    manifest: &Manifest,
    figure: &MapFigure,
    device: &Device,
) -> Result<RgbImage, MapError> {
    let gap = figure.cell.max(2) * 2;
    let widest = if figure.partners {
        "yellow OT pair"
    } else {
        "yellow T(x)"
    };
    let label_width = text_width(widest, 2) as usize + 2 * gap;
    let mut rows: Vec<(String, Vec<RgbImage>)> = Vec::new();
    let shown = figure.per_color * GRID_LEN;
    let render = |grids: &[f32]| -> Vec<RgbImage> {
        grids[..shown.min(grids.len())]
            .chunks(GRID_LEN)
            .map(|g| render_digit(g, figure.cell))
            .collect()
    };
    let per_color = if figure.partners {
        PARTNER_POOL.max(figure.per_color)
    } else {
        figure.per_color
    };
    let mapped = map_each_color(
        t,
        manifest,
        &figure.mnist_dir,
        per_color,
        figure.seed,
        device,
    )?;
    if figure.partners {
        let blocks = partner_each_color(
            mapped,
            &manifest.voxel,
            &figure.mnist_dir,
            manifest.target_digit,
            figure.seed,
            device,
        )?;
        for b in blocks {
            rows.push((format!("{} x", b.color), render(&b.inputs)));
            rows.push((format!("{} OT pair", b.color), render(&b.partners)));
            rows.push((format!("{} T(x)", b.color), render(&b.outputs)));
        }
    } else {
        for MappedColor {
            color,
            inputs,
            outputs,
        } in mapped
        {
            rows.push((format!("{color} x"), render(&inputs)));
            rows.push((format!("{color} T(x)"), render(&outputs)));
        }
    }
    let block = if figure.partners { 3 } else { 2 };
    let mut titles = vec![map_title(manifest)];
    if figure.partners {
        titles.push(format!(
            "middle rows: the training {} exact OT pairs x with, among {per_color} of its color",
            manifest.target_digit
        ));
    }
    Ok(lay_out_rows(
        &titles,
        &rows,
        block,
        label_width,
        figure.cell,
    ))
}

/// Title lines above labeled rows of digit pictures, with an extra gap after every `block`
/// rows (one color's block) so each block reads as one.
fn lay_out_rows(
    titles: &[String],
    rows: &[(String, Vec<RgbImage>)],
    block: usize,
    label_width: usize,
    cell: usize,
) -> RgbImage {
    let gap = cell.max(2) * 2;
    let tile = rows
        .first()
        .and_then(|(_, r)| r.first())
        .map_or(1, |i| i.width);
    let columns = rows.iter().map(|(_, r)| r.len()).max().unwrap_or(0);
    let line_height = 8 * 2 + gap / 2;
    let title_height = titles.len() * line_height + 2 * gap;
    // Wide enough for the digits and for every title line.
    let widest_title = titles.iter().map(|t| text_width(t, 2)).max().unwrap_or(0);
    let width = (label_width + columns * (tile + gap) + gap).max(widest_title as usize + 2 * gap);
    let height = title_height + rows.len() * (tile + gap) + (rows.len() / block) * gap + gap;
    let mut image = RgbImage::filled(width, height, PANEL);
    for (i, line) in titles.iter().enumerate() {
        draw_text(
            &mut image,
            gap as i64,
            (gap + i * line_height) as i64,
            line,
            LABEL,
            2,
        );
    }
    let mut y = title_height;
    for (i, (label, pictures)) in rows.iter().enumerate() {
        if i > 0 && i % block == 0 {
            y += gap;
        }
        draw_text(
            &mut image,
            gap as i64,
            (y + tile / 2) as i64 - 8,
            label,
            LABEL,
            2,
        );
        for (c, picture) in pictures.iter().enumerate() {
            image.blit(picture, label_width + c * (tile + gap), y);
        }
        y += tile + gap;
    }
    image
}

/// One map of a comparison figure, with its row label.
pub struct LabeledMap {
    pub label: String,
    pub t: TransportMap,
    pub manifest: Manifest,
}

/// The same `per_color` source test digits of each color (one row) above a row per map:
/// maps of one pair side by side (e.g. trained with different `--w`). With `draws` > 1,
/// each color's first digit instead, and in each map's row `draws` outputs T(x, z) of it
/// for different z (stochastic maps, `--weak-gamma`). The maps must share the source digit
/// and the voxel settings, so they see the same inputs.
pub fn compare_figure(
    maps: &[LabeledMap],
    figure: &MapFigure,
    title: &str,
    draws: usize,
    device: &Device,
) -> Result<RgbImage, MapError> {
    let first = maps.first().ok_or_else(|| MapError::Compare {
        why: "no maps given: pass --weights DIR for each".into(),
    })?;
    for other in &maps[1..] {
        if other.manifest.source_digit != first.manifest.source_digit
            || other.manifest.voxel != first.manifest.voxel
        {
            return Err(MapError::Compare {
                why: format!(
                    "{} maps {}s with {:?} digits but {} maps {}s with {:?} digits: compare maps \
                     of one source digit and one voxel setting",
                    first.label,
                    first.manifest.source_digit,
                    first.manifest.voxel.flavor.name(),
                    other.label,
                    other.manifest.source_digit,
                    other.manifest.voxel.flavor.name()
                ),
            });
        }
    }
    let shown = figure.per_color * GRID_LEN;
    let render = |grids: &[f32]| -> Vec<RgbImage> {
        grids[..shown.min(grids.len())]
            .chunks(GRID_LEN)
            .map(|g| render_digit(g, figure.cell))
            .collect()
    };
    let mapped: Vec<Vec<MappedColor>> = maps
        .iter()
        .map(|m| {
            map_each_color(
                &m.t,
                &m.manifest,
                &figure.mnist_dir,
                figure.per_color,
                figure.seed,
                device,
            )
        })
        .collect::<Result<_, _>>()?;
    let mut rows: Vec<(String, Vec<RgbImage>)> = Vec::new();
    for (k, color) in DigitColor::ALL.into_iter().enumerate() {
        let inputs = &mapped[0][k].inputs;
        if draws > 1 {
            let first = &inputs[..GRID_LEN.min(inputs.len())];
            rows.push((format!("{color} x"), render(first)));
            for map in maps {
                let drawn = map_draws(&map.t, &map.manifest, first, draws, figure.seed, device)?;
                let pictures = drawn
                    .chunks(GRID_LEN)
                    .map(|g| render_digit(g, figure.cell))
                    .collect();
                rows.push((format!("{color} {}", map.label), pictures));
            }
            continue;
        }
        rows.push((format!("{color} x"), render(inputs)));
        for (map, outputs) in maps.iter().zip(&mapped) {
            rows.push((
                format!("{color} {}", map.label),
                render(&outputs[k].outputs),
            ));
        }
    }
    let widest = rows
        .iter()
        .map(|(l, _)| text_width(l, 2))
        .max()
        .unwrap_or(0) as usize;
    let gap = figure.cell.max(2) * 2;
    Ok(lay_out_rows(
        &[title.to_string()],
        &rows,
        maps.len() + 1,
        widest + 2 * gap,
        figure.cell,
    ))
}

/// One panel of a loss figure: `values` over `steps` (in `x_unit`), with the range labeled.
fn plot_panel(
    name: &str,
    steps: &[f64],
    values: &[f64],
    color: [u8; 3],
    x_unit: &str,
    (width, height): (usize, usize),
) -> RgbImage {
    let mut image = RgbImage::filled(width, height, PANEL);
    let (left, right, top, bottom) = (90i64, 16i64, 34i64, 30i64);
    let (w, h) = (width as i64 - left - right, height as i64 - top - bottom);
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let (mut low, mut high) = finite
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| {
            (l.min(v), h.max(v))
        });
    if !(low.is_finite() && high.is_finite()) {
        (low, high) = (0.0, 1.0);
    }
    if high - low < 1e-12 {
        (low, high) = (low - 0.5, high + 0.5);
    }
    let (first, last) = (
        steps.first().copied().unwrap_or(0.0),
        steps.last().copied().unwrap_or(1.0),
    );
    let span = (last - first).max(1.0);
    draw_text(&mut image, left, 8, name, LABEL, 2);
    // Axes.
    let axis = [90, 92, 100];
    for x in left..left + w {
        image.fill_pixel(x, top + h, axis);
    }
    for y in top..=top + h {
        image.fill_pixel(left - 1, y, axis);
    }
    draw_text(&mut image, 4, top, &format!("{high:.3e}"), LABEL, 1);
    draw_text(&mut image, 4, top + h - 8, &format!("{low:.3e}"), LABEL, 1);
    let start = if x_unit == "step" {
        format!("{first:.0}")
    } else {
        format!("{first:.1}")
    };
    draw_text(&mut image, left, top + h + 8, &start, LABEL, 1);
    let end = if x_unit == "step" {
        format!("step {last:.0}")
    } else {
        format!("{last:.1} {x_unit}")
    };
    draw_text(
        &mut image,
        left + w - text_width(&end, 1),
        top + h + 8,
        &end,
        LABEL,
        1,
    );
    // Zero line, when zero is in range.
    if low < 0.0 && high > 0.0 {
        let y0 = top + ((high / (high - low)) * h as f64) as i64;
        for x in (left..left + w).step_by(4) {
            image.fill_pixel(x, y0, [60, 62, 70]);
        }
    }
    let to_pixel = |step: f64, value: f64| {
        (
            left + (((step - first) / span) * (w - 1) as f64).round() as i64,
            top + (((high - value) / (high - low)) * h as f64).round() as i64,
        )
    };
    let mut previous: Option<(i64, i64)> = None;
    for (&step, &value) in steps.iter().zip(values) {
        if !value.is_finite() {
            previous = None;
            continue;
        }
        let point = to_pixel(step, value);
        if let Some(from) = previous {
            draw_line(&mut image, from, point, color);
        } else {
            image.fill_pixel(point.0, point.1, color);
        }
        previous = Some(point);
    }
    image
}

fn draw_line(image: &mut RgbImage, from: (i64, i64), to: (i64, i64), color: [u8; 3]) {
    let n = (to.0 - from.0).abs().max((to.1 - from.1).abs()).max(1);
    for k in 0..=n {
        let x = from.0 + (to.0 - from.0) * k / n;
        let y = from.1 + (to.1 - from.1) * k / n;
        image.fill_pixel(x, y, color);
        image.fill_pixel(x, y + 1, color);
    }
}

/// The map figure's title: the pair, the flavor when it is not plain, and the training.
pub fn map_title(manifest: &Manifest) -> String {
    let mut flavor = match manifest.voxel.flavor.name() {
        "plain" => String::new(),
        other => format!(", {other}"),
    };
    if let Some(stack) = &manifest.stacked_on {
        let base = std::path::Path::new(&stack.dir)
            .file_name()
            .map_or_else(|| stack.dir.clone(), |n| n.to_string_lossy().into_owned());
        flavor += &format!(", stacked on {base}");
    }
    format!(
        "{} -> {}{flavor}: test digits x above T(x) ({})",
        manifest.source_digit,
        manifest.target_digit,
        crate::eval::evaluate::training_summary(manifest.training_steps, manifest.warm_start_steps)
    )
}

/// A run's loss curves: the warm start's regression loss and f-only L_f when the run had
/// them, then L_f, L_T and the transport cost per outer step (when there are two or more),
/// stacked; with model selection, its validation FID-3D and accuracy over wall minutes
/// last (time to quality).
pub fn loss_figure(
    log: &[StepRecord],
    warm: Option<&WarmStartReport>,
    selection: Option<&SelectionRecord>,
    restarts: Option<&RestartsCurve>,
) -> RgbImage {
    let steps: Vec<f64> = log.iter().map(|r| r.step as f64).collect();
    let index = |values: &[f64]| (1..=values.len()).map(|i| i as f64).collect::<Vec<_>>();
    let mut panels: Vec<CurvePanel> = Vec::new();
    if let Some(warm) = warm {
        if !warm.regression_losses.is_empty() {
            panels.push(CurvePanel::new(
                "warm start: |T(x) - y|^2 / D on OT pairs",
                index(&warm.regression_losses),
                warm.regression_losses.clone(),
                [230, 120, 230],
            ));
        }
        if !warm.potential_losses.is_empty() {
            panels.push(CurvePanel::new(
                "warm start: L_f with T fixed",
                index(&warm.potential_losses),
                warm.potential_losses.clone(),
                [90, 210, 220],
            ));
        }
    }
    // A run that is (so far) only its warm start: one NOT step makes no curve.
    if panels.is_empty() || log.len() >= 2 {
        panels.push(CurvePanel::new(
            "L_f = mean f(T(x)) - mean f(y)",
            steps.clone(),
            log.iter().map(|r| r.l_f).collect(),
            [120, 180, 255],
        ));
        panels.push(CurvePanel::new(
            "L_T = cost - mean f(T(x))",
            steps.clone(),
            log.iter().map(|r| r.l_t).collect(),
            [255, 170, 90],
        ));
        panels.push(CurvePanel::new(
            "cost = mean |x - T(x)|^2 / D",
            steps,
            log.iter().map(|r| r.cost).collect(),
            [120, 220, 140],
        ));
    }
    if let Some(record) = selection.filter(|r| !r.history.is_empty()) {
        let minutes = validation_minutes(log, warm, record);
        let chosen = record
            .best
            .as_ref()
            .map_or(String::new(), |b| format!(" (best: step {})", b.step));
        panels.push(
            CurvePanel::new(
                format!("validation FID-3D vs minutes{chosen}"),
                minutes.clone(),
                record.history.iter().map(|p| p.fid).collect(),
                [255, 110, 110],
            )
            .in_unit("min"),
        );
        panels.push(
            CurvePanel::new(
                "validation: share called the target",
                minutes,
                record.history.iter().map(|p| p.target_accuracy).collect(),
                [240, 220, 110],
            )
            .in_unit("min"),
        );
    }
    if let Some(curve) = restarts.filter(|c| !c.minutes.is_empty()) {
        panels.push(
            CurvePanel::new(
                format!("seeds {}: best validation FID-3D so far", curve.seeds),
                curve.minutes.clone(),
                curve.best_fid.clone(),
                [255, 140, 200],
            )
            .in_unit("min"),
        );
    }
    stacked_panels(&panels)
}

/// One restart's records, for [`restarts_curve`].
pub struct RestartTrace {
    pub seed: u64,
    pub log: Vec<StepRecord>,
    pub warm: Option<WarmStartReport>,
    pub selection: SelectionRecord,
}

/// The time-to-quality curve of a run of restarts (see [`restarts_curve`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RestartsCurve {
    /// The restarts' seeds, e.g. "0-2" (restarts train consecutive seeds).
    pub seeds: String,
    pub minutes: Vec<f64>,
    pub best_fid: Vec<f64>,
}

/// At each validation of each restart in turn (they train one after another): the wall
/// minutes since the first began, and the lowest validation FID-3D of all restarts so far,
/// which is the map the run would export if stopped then.
pub fn restarts_curve(traces: &[RestartTrace]) -> RestartsCurve {
    let (mut minutes, mut best_fid) = (Vec::new(), Vec::new());
    let (mut offset, mut best) = (0.0, f64::INFINITY);
    for trace in traces {
        let warm = trace.warm.as_ref();
        let at = validation_minutes(&trace.log, warm, &trace.selection);
        for (m, point) in at.iter().zip(&trace.selection.history) {
            best = best.min(point.fid);
            minutes.push(offset + m);
            best_fid.push(best);
        }
        let logged: f64 = trace.log.iter().map(|r| r.seconds).sum();
        offset += (warm.map_or(0.0, |w| w.seconds) + logged) / 60.0;
    }
    RestartsCurve {
        seeds: match (traces.first(), traces.last()) {
            (Some(first), Some(last)) if traces.len() > 1 => {
                format!("{}-{}", first.seed, last.seed)
            }
            (Some(only), _) => only.seed.to_string(),
            _ => String::new(),
        },
        minutes,
        best_fid,
    }
}

/// The wall minutes into the run at each validation: the warm start's seconds, then the
/// logged seconds of every NOT step up to it.
fn validation_minutes(
    log: &[StepRecord],
    warm: Option<&WarmStartReport>,
    record: &SelectionRecord,
) -> Vec<f64> {
    let start = warm.map_or(0.0, |w| w.seconds);
    record
        .history
        .iter()
        .map(|p| {
            let not: f64 = log
                .iter()
                .filter(|r| r.step <= p.step)
                .map(|r| r.seconds)
                .sum();
            (start + not) / 60.0
        })
        .collect()
}

/// One curve of a stacked figure.
pub struct CurvePanel {
    pub title: String,
    pub x: Vec<f64>,
    pub y: Vec<f64>,
    pub color: [u8; 3],
    /// What x counts: "step" (the default) or a unit such as "min".
    pub x_unit: &'static str,
}

impl CurvePanel {
    pub fn new(title: impl Into<String>, x: Vec<f64>, y: Vec<f64>, color: [u8; 3]) -> Self {
        Self {
            title: title.into(),
            x,
            y,
            color,
            x_unit: "step",
        }
    }

    /// The same curve with x in `unit`.
    pub fn in_unit(self, unit: &'static str) -> Self {
        Self {
            x_unit: unit,
            ..self
        }
    }
}

/// Curves as panels stacked top to bottom.
pub fn stacked_panels(panels: &[CurvePanel]) -> RgbImage {
    let (width, height) = (900, 240);
    let mut image = RgbImage::filled(width, height * panels.len().max(1), PANEL);
    for (i, p) in panels.iter().enumerate() {
        let panel = plot_panel(&p.title, &p.x, &p.y, p.color, p.x_unit, (width, height));
        image.blit(&panel, 0, i * height);
    }
    image
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(image: &RgbImage, color: [u8; 3]) -> usize {
        (0..image.height)
            .flat_map(|y| (0..image.width).map(move |x| (x, y)))
            .filter(|&(x, y)| image.pixel(x, y) == color)
            .count()
    }

    #[test]
    fn the_map_title_names_the_flavor_unless_plain() {
        let mut manifest = Manifest::parse(include_str!(
            "../../../models/pretrained/three-to-five/manifest.json"
        ))
        .unwrap();
        manifest.warm_start_steps = 600;
        manifest.training_steps = 1;
        assert_eq!(
            map_title(&manifest),
            "3 -> 5: test digits x above T(x) (600 warm-start regression steps, then 1 NOT step)"
        );
        manifest.training_steps = 300;
        assert_eq!(
            map_title(&manifest),
            "3 -> 5: test digits x above T(x) (600 warm-start regression steps, then 300 NOT steps)"
        );
        manifest.voxel.flavor = ot3d_models::voxel::Flavor::Rotated { max_degrees: 45.0 };
        assert!(map_title(&manifest).starts_with("3 -> 5, rotated: "));
        manifest.stacked_on = Some(ot3d_models::nets::weights::StackedOn {
            dir: "runs/t1-model".into(),
            sha256: String::new(),
        });
        assert!(
            map_title(&manifest).starts_with("3 -> 5, rotated, stacked on t1-model: "),
            "{}",
            map_title(&manifest)
        );
    }

    #[test]
    fn digits_outside_the_unit_range_still_render() {
        let mut values = vec![0.0f32; GRID_LEN];
        values[100] = 1.4;
        values[101] = -0.3;
        values[102] = f32::NAN;
        values[GRID_LEN / 3 + 100] = 0.8;
        let image = render_digit(&values, 2);
        assert!(image.width > 0);
        assert!((0..image.height).any(|y| {
            (0..image.width).any(|x| image.pixel(x, y) != ot3d_models::render::BACKGROUND)
        }));
    }

    #[test]
    fn text_is_drawn_and_unknown_characters_do_not_panic() {
        let mut image = RgbImage::filled(100, 20, PANEL);
        draw_text(&mut image, 2, 2, "T(x) 3->5", LABEL, 1);
        assert!(lit(&image, LABEL) > 20);
        draw_text(&mut image, 2, 2, "‖→", LABEL, 1);
        assert_eq!(text_width("abc", 2), 48);
    }

    #[test]
    fn greek_latin_and_the_arrow_have_glyphs_and_the_rest_falls_back_to_a_question_mark() {
        let question = glyph('?').unwrap();
        for ch in ['γ', '×', '→', 'w', '3'] {
            let drawn = glyph(ch).unwrap_or_else(|| panic!("{ch} has a glyph"));
            assert_ne!(drawn, question, "{ch}");
            assert_ne!(drawn, [0; 8], "{ch} is not blank");
        }
        assert_eq!(glyph('‖'), None);
        // A label with γ and → draws as many lit pixels as its glyphs have bits.
        let mut image = RgbImage::filled(40, 10, PANEL);
        draw_text(&mut image, 0, 0, "γ→", LABEL, 1);
        let bits: u32 = ['γ', '→']
            .iter()
            .flat_map(|&c| glyph(c).unwrap())
            .map(u8::count_ones)
            .sum();
        assert_eq!(lit(&image, LABEL), bits as usize);
    }

    #[test]
    fn loss_curves_draw_every_series_and_survive_bad_values() {
        let log: Vec<StepRecord> = (1..=50)
            .map(|step| StepRecord {
                step,
                l_f: (step as f64 * 0.3).sin(),
                l_t: -(step as f64),
                cost: if step == 20 {
                    f64::NAN
                } else {
                    1.0 / step as f64
                },
                seconds: 1.0,
                gamma: None,
                spread: None,
                anchor_fit: None,
            })
            .collect();
        let image = loss_figure(&log, None, None, None);
        assert_eq!((image.width, image.height), (900, 720));
        for color in [[120, 180, 255], [255, 170, 90], [120, 220, 140]] {
            assert!(lit(&image, color) > 100, "{color:?} curve missing");
        }
        // One record, or a constant series, still draws.
        let one = loss_figure(&log[..1], None, None, None);
        assert!(lit(&one, [120, 180, 255]) > 0);

        // A warm start adds its two panels on top.
        let warm = WarmStartReport {
            pairs: 8,
            pair_ot_cost: 0.01,
            pair_random_cost: 0.02,
            targets_per_block: 2,
            weak_plan: None,
            style_groups: None,
            final_regression_loss: 0.005,
            regression_losses: (1..=40).map(|i| 1.0 / i as f64).collect(),
            potential_losses: (1..=10).map(|i| -(i as f64)).collect(),
            seconds: 1.0,
        };
        let both = loss_figure(&log, Some(&warm), None, None);
        assert_eq!((both.width, both.height), (900, 1200));
        assert!(
            lit(&both, [230, 120, 230]) > 100,
            "regression curve missing"
        );
        assert!(lit(&both, [90, 210, 220]) > 50, "f warm-up curve missing");
        let no_f = loss_figure(
            &log,
            Some(&WarmStartReport {
                potential_losses: vec![],
                ..warm.clone()
            }),
            None,
            None,
        );
        assert_eq!(no_f.height, 960);

        // Model selection adds validation FID-3D and accuracy over wall minutes.
        use crate::training::selection::{SelectionRecord, ValidationPoint};
        let point = |step, fid, target_accuracy| ValidationPoint {
            step,
            fid,
            target_accuracy,
        };
        let record = SelectionRecord {
            held_out: 16,
            reference_digits: 1000,
            history: vec![
                point(10, 40.0, 0.9),
                point(20, 25.0, 0.95),
                point(30, 30.0, 0.97),
            ],
            best: Some(point(20, 25.0, 0.95)),
        };
        let selected = loss_figure(&log, Some(&warm), Some(&record), None);
        assert_eq!(selected.height, 1200 + 480);
        assert!(lit(&selected, [255, 110, 110]) > 100, "FID curve missing");
        assert!(
            lit(&selected, [240, 220, 110]) > 100,
            "accuracy curve missing"
        );
        // Wall minutes: the warm start's 1 s, then 1 s per NOT step.
        assert_eq!(
            validation_minutes(&log, Some(&warm), &record),
            vec![11.0 / 60.0, 21.0 / 60.0, 31.0 / 60.0]
        );

        // Restarts: the second's validations follow the first's whole time (its warm start
        // and every logged step), and the curve keeps the best score so far.
        let second = SelectionRecord {
            history: vec![point(10, 20.0, 0.9), point(30, 35.0, 0.9)],
            best: Some(point(10, 20.0, 0.9)),
            ..record.clone()
        };
        let trace = |seed, selection: &SelectionRecord| RestartTrace {
            seed,
            log: log.clone(),
            warm: Some(warm.clone()),
            selection: selection.clone(),
        };
        let curve = restarts_curve(&[trace(3, &record), trace(4, &second)]);
        let whole = (1.0 + log.len() as f64) / 60.0;
        assert_eq!(curve.seeds, "3-4");
        assert_eq!(curve.best_fid, vec![40.0, 25.0, 25.0, 20.0, 20.0]);
        let expected = [
            11.0 / 60.0,
            21.0 / 60.0,
            31.0 / 60.0,
            whole + 11.0 / 60.0,
            whole + 31.0 / 60.0,
        ];
        for (got, want) in curve.minutes.iter().zip(expected) {
            assert!((got - want).abs() < 1e-12, "{:?}", curve.minutes);
        }
        let with_restarts = loss_figure(&log, Some(&warm), Some(&record), Some(&curve));
        assert_eq!(with_restarts.height, 1200 + 3 * 240);
        assert!(
            lit(&with_restarts, [255, 140, 200]) > 100,
            "restarts curve missing"
        );
    }
}
