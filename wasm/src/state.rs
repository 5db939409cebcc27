//! The page's whole view as a URL hash (`#m=three-to-five&d=17&c=red&th=0.30&t=1.00&cam=30,25,40`),
//! so a copied link reproduces it. Parsing never fails: each bad field falls back to its
//! default and adds a message saying what was wrong.

use crate::drawing::{self, Stroke};
use ot3d_models::voxel::DigitColor;
use serde::{Deserialize, Serialize};

/// Longer hashes are not links this page made: ignored whole.
pub const MAX_HASH: usize = 16 * 1024;
/// One URL-safe character per stroke coordinate (`0..=63`).
const ALPHABET: &[u8; 64] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_";

pub const THRESHOLD_RANGE: (f32, f32) = (0.05, 0.95);
pub const PITCH_LIMIT: f32 = 85.0;
pub const DISTANCE_RANGE: (f32, f32) = (15.0, 80.0);

/// Everything the page shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewState {
    /// Model directory name under `models/` (None: the page's first model).
    pub model: Option<String>,
    /// Position in the gallery of test digits (ignored while `strokes` is set).
    pub digit: u32,
    /// A drawn digit instead of a gallery one.
    pub strokes: Option<Vec<Stroke>>,
    pub color: String,
    /// Voxels whose brightest channel is below this are not drawn.
    pub threshold: f32,
    /// Displacement: the right view shows (1 − t)·x + t·T(x).
    pub t: f32,
    /// Orbit camera: degrees around the vertical axis, degrees above the horizon, distance.
    pub yaw: f32,
    pub pitch: f32,
    pub distance: f32,
    /// Run T on the CPU even when WebGPU is available.
    pub cpu: bool,
}

impl Default for ViewState {
    fn default() -> Self {
        Self {
            model: None,
            digit: 0,
            strokes: None,
            color: DigitColor::Red.name().to_string(),
            threshold: 0.3,
            t: 1.0,
            yaw: 25.0,
            pitch: 20.0,
            distance: 38.0,
            cpu: false,
        }
    }
}

/// A parsed hash and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Parsed {
    pub state: ViewState,
    pub problems: Vec<String>,
}

fn parse_number(key: &str, value: &str, range: (f32, f32)) -> Result<f32, String> {
    let number: f32 = value
        .parse()
        .ok()
        .filter(|v: &f32| v.is_finite())
        .ok_or_else(|| format!("{key}={value:?} is not a number"))?;
    if !(range.0..=range.1).contains(&number) {
        return Err(format!("{key}={value} is outside {}..{}", range.0, range.1));
    }
    Ok(number)
}

fn valid_model_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn encode_strokes(strokes: &[Stroke]) -> String {
    strokes
        .iter()
        .map(|s| {
            s.iter()
                .flat_map(|&(x, y)| [ALPHABET[x as usize] as char, ALPHABET[y as usize] as char])
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn decode_strokes(text: &str) -> Result<Vec<Stroke>, String> {
    let coordinate = |c: u8| {
        ALPHABET
            .iter()
            .position(|&a| a == c)
            .map(|p| p as u8)
            .ok_or_else(|| format!("s= has {:?}, which is not a stroke character", c as char))
    };
    let strokes = text
        .split('.')
        .map(|part| {
            let bytes = part.as_bytes();
            if bytes.len() % 2 != 0 {
                return Err("s= has a stroke with an odd number of coordinates".to_string());
            }
            bytes
                .chunks_exact(2)
                .map(|xy| Ok((coordinate(xy[0])?, coordinate(xy[1])?)))
                .collect::<Result<Stroke, String>>()
        })
        .collect::<Result<Vec<Stroke>, String>>()?;
    drawing::validate(&strokes).map_err(|e| format!("s= drawing: {e}"))?;
    Ok(strokes)
}

/// Reads a URL hash (with or without the leading `#`).
pub fn parse_hash(hash: &str) -> Parsed {
    let mut state = ViewState::default();
    let mut problems = Vec::new();
    let hash = hash.strip_prefix('#').unwrap_or(hash);
    if hash.len() > MAX_HASH {
        problems.push(format!(
            "the link's state is {} characters long (at most {MAX_HASH}); showing the default view",
            hash.len()
        ));
        return Parsed { state, problems };
    }
    for field in hash.split('&').filter(|f| !f.is_empty()) {
        let Some((key, value)) = field.split_once('=') else {
            problems.push(format!("ignored {field:?}: expected key=value"));
            continue;
        };
        let outcome: Result<(), String> = match key {
            "m" => {
                if valid_model_name(value) {
                    state.model = Some(value.to_string());
                    Ok(())
                } else {
                    Err(format!("m={value:?} is not a model name"))
                }
            }
            "d" => value
                .parse::<u32>()
                .map(|d| state.digit = d)
                .map_err(|_| format!("d={value:?} is not a digit number")),
            "s" => decode_strokes(value).map(|s| state.strokes = Some(s)),
            "c" => DigitColor::ALL
                .iter()
                .find(|c| c.name() == value)
                .map(|c| state.color = c.name().to_string())
                .ok_or_else(|| format!("c={value:?} is not one of red, yellow, green, blue")),
            "th" => parse_number(key, value, THRESHOLD_RANGE).map(|v| state.threshold = v),
            "t" => parse_number(key, value, (0.0, 1.0)).map(|v| state.t = v),
            "cam" => parse_camera(value).map(|(yaw, pitch, distance)| {
                (state.yaw, state.pitch, state.distance) = (yaw, pitch, distance)
            }),
            "cpu" => match value {
                "1" => {
                    state.cpu = true;
                    Ok(())
                }
                "0" => Ok(()),
                _ => Err(format!("cpu={value:?} must be 0 or 1")),
            },
            _ => Err(format!("unknown key {key:?}")),
        };
        if let Err(problem) = outcome {
            problems.push(format!("ignored {problem}"));
        }
    }
    Parsed { state, problems }
}

fn parse_camera(value: &str) -> Result<(f32, f32, f32), String> {
    let parts: Vec<&str> = value.split(',').collect();
    let [yaw, pitch, distance] = parts[..] else {
        return Err(format!("cam={value:?}: expected yaw,pitch,distance"));
    };
    Ok((
        parse_number("cam yaw", yaw, (-180.0, 180.0))?,
        parse_number("cam pitch", pitch, (-PITCH_LIMIT, PITCH_LIMIT))?,
        parse_number("cam distance", distance, DISTANCE_RANGE)?,
    ))
}

/// Checks a state the page built (so a link never carries what `parse_hash` would refuse).
pub fn validate(state: &ViewState) -> Result<(), String> {
    if let Some(model) = &state.model
        && !valid_model_name(model)
    {
        return Err(format!("{model:?} is not a model name"));
    }
    if let Some(strokes) = &state.strokes {
        drawing::validate(strokes).map_err(|e| e.to_string())?;
    }
    if !DigitColor::ALL.iter().any(|c| c.name() == state.color) {
        return Err(format!("{:?} is not a digit color", state.color));
    }
    let checks = [
        ("threshold", state.threshold, THRESHOLD_RANGE),
        ("t", state.t, (0.0, 1.0)),
        ("yaw", state.yaw, (-180.0, 180.0)),
        ("pitch", state.pitch, (-PITCH_LIMIT, PITCH_LIMIT)),
        ("distance", state.distance, DISTANCE_RANGE),
    ];
    for (name, value, range) in checks {
        if !(range.0..=range.1).contains(&value) {
            return Err(format!(
                "{name} {value} is outside {}..{}",
                range.0, range.1
            ));
        }
    }
    Ok(())
}

/// Writes a state as a hash (with the leading `#`), after checking it.
pub fn format_hash(state: &ViewState) -> Result<String, String> {
    validate(state)?;
    let mut fields = Vec::new();
    if let Some(model) = &state.model {
        fields.push(format!("m={model}"));
    }
    match &state.strokes {
        Some(strokes) => fields.push(format!("s={}", encode_strokes(strokes))),
        None => fields.push(format!("d={}", state.digit)),
    }
    fields.push(format!("c={}", state.color));
    fields.push(format!("th={:.2}", state.threshold));
    fields.push(format!("t={:.2}", state.t));
    fields.push(format!(
        "cam={:.0},{:.0},{:.1}",
        state.yaw, state.pitch, state.distance
    ));
    if state.cpu {
        fields.push("cpu=1".to_string());
    }
    Ok(format!("#{}", fields.join("&")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_formatted_state_parses_back_to_itself() {
        let state = ViewState {
            model: Some("two-to-four".into()),
            digit: 0,
            strokes: Some(vec![vec![(0, 63), (12, 40)], vec![(5, 5)]]),
            color: "blue".into(),
            threshold: 0.45,
            t: 0.25,
            yaw: -120.0,
            pitch: 10.0,
            distance: 30.5,
            cpu: true,
        };
        let hash = format_hash(&state).unwrap();
        assert_eq!(
            hash,
            "#m=two-to-four&s=0_Ce.55&c=blue&th=0.45&t=0.25&cam=-120,10,30.5&cpu=1"
        );
        let parsed = parse_hash(&hash);
        assert_eq!(parsed.problems, Vec::<String>::new());
        assert_eq!(parsed.state, state);
        let gallery = ViewState {
            digit: 17,
            ..ViewState::default()
        };
        assert_eq!(parse_hash(&format_hash(&gallery).unwrap()).state, gallery);
    }

    #[test]
    fn bad_fields_fall_back_with_a_message_each() {
        let parsed = parse_hash("#d=x&c=purple&th=2&t=nan&cam=1,2&cpu=yes&zz=1&m=../x&s=0&junk");
        assert_eq!(parsed.state, ViewState::default());
        let text = parsed.problems.join("\n");
        for needle in [
            "d=\"x\" is not a digit number",
            "c=\"purple\"",
            "th=2 is outside 0.05..0.95",
            "t=\"nan\" is not a number",
            "expected yaw,pitch,distance",
            "cpu=\"yes\"",
            "unknown key \"zz\"",
            "m=\"../x\" is not a model name",
            "odd number of coordinates",
            "expected key=value",
        ] {
            assert!(text.contains(needle), "{needle} missing from {text}");
        }
        assert_eq!(parsed.problems.len(), 10);
        let good_and_bad = parse_hash("c=green&th=abc&d=3");
        assert_eq!(good_and_bad.state.color, "green");
        assert_eq!(good_and_bad.state.digit, 3);
        assert_eq!(good_and_bad.problems.len(), 1);
    }

    #[test]
    fn hostile_hashes_never_break_the_parser() {
        let long = "a".repeat(MAX_HASH + 1);
        assert_eq!(parse_hash(&long).problems.len(), 1);
        assert!(
            parse_hash("#s=!!")
                .problems
                .iter()
                .any(|p| p.contains("not a stroke character"))
        );
        assert!(parse_hash("#s=").problems[0].contains("nothing is drawn"));
        // Deterministic pseudo-random strings and mutations of a real hash.
        let base = format_hash(&ViewState::default()).unwrap().into_bytes();
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..20_000 {
            let text: Vec<u8> = if round % 2 == 0 {
                (0..next() % 80).map(|_| (next() % 128) as u8).collect()
            } else {
                let mut m = base.clone();
                for _ in 0..1 + next() % 4 {
                    let at = (next() as usize) % m.len();
                    m[at] = b"=&,.-0123456789abcdz#%"[(next() % 22) as usize];
                }
                m
            };
            let parsed = parse_hash(&String::from_utf8_lossy(&text));
            validate(&parsed.state).expect("a parsed state is always valid");
        }
    }

    #[test]
    fn format_refuses_states_a_link_must_not_carry() {
        let bad = ViewState {
            threshold: 0.0,
            ..ViewState::default()
        };
        assert!(format_hash(&bad).unwrap_err().contains("threshold"));
        let bad = ViewState {
            color: "pink".into(),
            ..ViewState::default()
        };
        assert!(format_hash(&bad).is_err());
        let bad = ViewState {
            strokes: Some(vec![]),
            ..ViewState::default()
        };
        assert!(format_hash(&bad).unwrap_err().contains("nothing is drawn"));
    }
}
