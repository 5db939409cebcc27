//! Digit colors: the assignment's four (red, yellow, green, blue) and the NOT reference's
//! random-hue colorization.

use crate::rng::SeedRng;

/// One of the four colors of the assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DigitColor {
    Red,
    Yellow,
    Green,
    Blue,
}

impl DigitColor {
    pub const ALL: [DigitColor; 4] = [
        DigitColor::Red,
        DigitColor::Yellow,
        DigitColor::Green,
        DigitColor::Blue,
    ];

    /// The color as (r, g, b) in `[0, 1]`.
    pub fn rgb(self) -> [f32; 3] {
        match self {
            DigitColor::Red => [1.0, 0.0, 0.0],
            DigitColor::Yellow => [1.0, 1.0, 0.0],
            DigitColor::Green => [0.0, 1.0, 0.0],
            DigitColor::Blue => [0.0, 0.0, 1.0],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DigitColor::Red => "red",
            DigitColor::Yellow => "yellow",
            DigitColor::Green => "green",
            DigitColor::Blue => "blue",
        }
    }
}

impl std::fmt::Display for DigitColor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for DigitColor {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DigitColor::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| format!("unknown color {s:?}: use one of red, yellow, green, blue"))
    }
}

/// How a digit gets its color.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Coloring {
    /// One of the four [`DigitColor`]s, uniformly at random per sample.
    Palette,
    /// Always this color.
    Fixed(DigitColor),
    /// A hue uniform in [0°, 360°) at full saturation and value, as the NOT reference's
    /// `random_color` for colored MNIST.
    Hue,
}

impl Coloring {
    /// Draws the (r, g, b) multiplier of one sample. Always draws exactly one number from
    /// `rng` (even for `Fixed`), so the rest of a sample's randomness does not depend on
    /// the coloring.
    pub fn draw(self, rng: &mut SeedRng) -> [f32; 3] {
        let u = rng.uniform_f64();
        match self {
            Coloring::Palette => DigitColor::ALL[((u * 4.0) as usize).min(3)].rgb(),
            Coloring::Fixed(color) => color.rgb(),
            Coloring::Hue => hue_to_rgb(u * 360.0),
        }
    }
}

/// HSV → RGB at saturation 1 and value 1; `hue` in degrees.
pub fn hue_to_rgb(hue: f64) -> [f32; 3] {
    let h = hue.rem_euclid(360.0) / 60.0;
    let sector = h.floor();
    let f = (h - sector) as f32;
    match sector as u8 {
        0 => [1.0, f, 0.0],
        1 => [1.0 - f, 1.0, 0.0],
        2 => [0.0, 1.0, f],
        3 => [0.0, 1.0 - f, 1.0],
        4 => [f, 0.0, 1.0],
        _ => [1.0, 0.0, 1.0 - f],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn palette_draws_all_four_colors_about_equally() {
        let mut rng = SeedRng::new(42);
        let mut counts = std::collections::HashMap::new();
        for _ in 0..4000 {
            *counts
                .entry(Coloring::Palette.draw(&mut rng).map(|v| v.to_bits()))
                .or_insert(0) += 1;
        }
        assert_eq!(counts.len(), 4);
        for color in DigitColor::ALL {
            let n = counts[&color.rgb().map(|v| v.to_bits())];
            assert!((850..1150).contains(&n), "{color}: {n}");
        }
    }

    #[test]
    fn fixed_is_fixed_and_names_round_trip() {
        let mut rng = SeedRng::new(1);
        for color in DigitColor::ALL {
            assert_eq!(Coloring::Fixed(color).draw(&mut rng), color.rgb());
            assert_eq!(color.name().parse::<DigitColor>(), Ok(color));
        }
        assert!(
            "purple"
                .parse::<DigitColor>()
                .unwrap_err()
                .contains("red, yellow")
        );
    }

    #[test]
    fn hue_wheel_hits_primaries_and_stays_saturated() {
        assert_eq!(hue_to_rgb(0.0), [1.0, 0.0, 0.0]);
        assert_eq!(hue_to_rgb(60.0), [1.0, 1.0, 0.0]);
        assert_eq!(hue_to_rgb(120.0), [0.0, 1.0, 0.0]);
        assert_eq!(hue_to_rgb(240.0), [0.0, 0.0, 1.0]);
        assert_eq!(hue_to_rgb(360.0), [1.0, 0.0, 0.0]);
        let mut rng = SeedRng::new(9);
        for _ in 0..100 {
            let rgb = Coloring::Hue.draw(&mut rng);
            let max = rgb.iter().cloned().fold(0.0, f32::max);
            let min = rgb.iter().cloned().fold(1.0, f32::min);
            assert_eq!((max, min), (1.0, 0.0), "{rgb:?} not fully saturated");
        }
    }

    #[test]
    fn serde_names_are_kebab_case() {
        let json = serde_json::to_string(&Coloring::Fixed(DigitColor::Yellow)).unwrap();
        assert_eq!(json, r#"{"fixed":"yellow"}"#);
        assert_eq!(
            serde_json::to_string(&Coloring::Palette).unwrap(),
            r#""palette""#
        );
    }
}
