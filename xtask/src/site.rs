//! `cargo xtask web`: the deployable site in www/dist — the page, the wasm package, every
//! shipped transport map from models/pretrained, and a gallery of held-out test digits per
//! source class — and the transfer size (gzip) of what a visitor downloads.

use crate::shell::step;
use crate::wasm_pkg::{GlueTarget, build};
use anyhow::{Context, Result, bail};
use flate2::Compression;
use flate2::write::GzEncoder;
use ot3d_models::digit_pack::DigitPack;
use ot3d_models::mnist::{LabeledImages, Split};
use ot3d_models::ot_partners::partner_pack;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Test digits per gallery (≥ 200 asked; 256 × 788 bytes ≈ 200 KB raw).
pub const GALLERY_DIGITS: usize = 256;
/// The page's static files, copied as they are.
const STATIC_FILES: [&str; 3] = ["index.html", "app.js", "style.css"];

/// One shipped transport map, as the page's models/index.json lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteModel {
    pub name: String,
    pub source_digit: u8,
    pub target_digit: u8,
    pub weights_file: String,
}

impl SiteModel {
    fn index_entry(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "source_digit": self.source_digit,
            "target_digit": self.target_digit,
            "manifest": format!("models/{}/manifest.json", self.name),
            "weights": format!("models/{}/{}", self.name, self.weights_file),
            "digits": gallery_path(self.source_digit),
            "ot_partners": partners_path(self.source_digit, self.target_digit),
        })
    }
}

fn gallery_path(digit: u8) -> String {
    format!("digits/test-{digit}.bin")
}

/// Entry `i`: the training digit of class `target` that exact discrete OT pairs with
/// gallery digit `i` (the page's discrete-OT baseline).
fn partners_path(source: u8, target: u8) -> String {
    format!("digits/ot-partners-{source}to{target}.bin")
}

/// The transport maps under `pretrained` (directories whose manifest has kind
/// "transport-map"), sorted by name with three-to-five first (the page's default).
pub fn shipped_models(pretrained: &Path) -> Result<Vec<SiteModel>> {
    let mut models = Vec::new();
    let entries = std::fs::read_dir(pretrained)
        .with_context(|| format!("cannot list {}", pretrained.display()))?;
    for entry in entries {
        let dir = entry?.path();
        let manifest = dir.join("manifest.json");
        if !manifest.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&manifest)
            .with_context(|| format!("cannot read {}", manifest.display()))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", manifest.display()))?;
        if json["kind"] != "transport-map" {
            continue;
        }
        if !json["stacked_on"].is_null() {
            bail!(
                "{} is a stacked map (trained on the outputs of {}): the page runs single maps; move it out of models/pretrained",
                dir.display(),
                json["stacked_on"]["dir"]
            );
        }
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .context("a model directory has a UTF-8 name")?
            .to_string();
        let digit = |key: &str| {
            json[key]
                .as_u64()
                .filter(|&d| d <= 9)
                .map(|d| d as u8)
                .with_context(|| format!("{}: {key} is not a digit 0-9", manifest.display()))
        };
        let weights_file = json["weights_file"]
            .as_str()
            .filter(|f| !f.contains('/') && !f.contains(".."))
            .with_context(|| format!("{}: weights_file is not a file name", manifest.display()))?
            .to_string();
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            bail!(
                "model directory {} must be named with a-z, 0-9 and '-' only (it becomes part of the page's links)",
                dir.display()
            );
        }
        models.push(SiteModel {
            source_digit: digit("source_digit")?,
            target_digit: digit("target_digit")?,
            name,
            weights_file,
        });
    }
    models.sort_by_key(|m| (m.name != "three-to-five", m.name.clone()));
    Ok(models)
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::copy(from, to)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

fn gzip_len(bytes: &[u8]) -> Result<usize> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?.len())
}

/// Copies the models and writes galleries and the model index into `dist`.
pub fn write_content(root: &Path, dist: &Path) -> Result<Vec<SiteModel>> {
    let models = shipped_models(&root.join("models/pretrained"))?;
    if models.is_empty() {
        bail!(
            "models/pretrained holds no transport map, so the page has nothing to run. Train and export one: \
             `cargo run --release -p ot3d-trainer -- train` then `… export --run runs/three-to-five --out models/pretrained/three-to-five`"
        );
    }
    step("Site: copying the shipped models");
    for model in &models {
        let from = root.join("models/pretrained").join(&model.name);
        let to = dist.join("models").join(&model.name);
        copy(&from.join("manifest.json"), &to.join("manifest.json"))?;
        copy(
            &from.join(&model.weights_file),
            &to.join(&model.weights_file),
        )?;
        println!(
            "    {} ({} → {})",
            to.display(),
            model.source_digit,
            model.target_digit
        );
    }
    let index = serde_json::json!({
        "models": models.iter().map(SiteModel::index_entry).collect::<Vec<_>>()
    });
    write(
        &dist.join("models/index.json"),
        serde_json::to_string_pretty(&index)?.as_bytes(),
    )?;

    step(&format!(
        "Site: galleries of {GALLERY_DIGITS} held-out test digits per source class"
    ));
    let mnist = crate::data::ensure_mnist(root)?;
    let (images_spec, labels_spec) = Split::Test.files();
    let read =
        |name: &str| std::fs::read(mnist.join(name)).with_context(|| format!("cannot read {name}"));
    let test = LabeledImages::parse(&read(images_spec.name)?, &read(labels_spec.name)?)
        .context("the MNIST test files do not parse")?;
    let mut sources: Vec<u8> = models.iter().map(|m| m.source_digit).collect();
    sources.sort_unstable();
    sources.dedup();
    let mut galleries = std::collections::BTreeMap::new();
    for digit in sources {
        let pack = DigitPack::select(&test, Split::Test, digit, GALLERY_DIGITS)?;
        let path = dist.join(gallery_path(digit));
        write(&path, &pack.encode())?;
        println!("    {}", path.display());
        galleries.insert(digit, pack);
    }

    step(&format!(
        "Site: discrete-OT partners of the galleries among {GALLERY_DIGITS} training digits of each target class"
    ));
    let (images_spec, labels_spec) = Split::Train.files();
    let train = LabeledImages::parse(&read(images_spec.name)?, &read(labels_spec.name)?)
        .context("the MNIST training files do not parse")?;
    for model in &models {
        let gallery = &galleries[&model.source_digit];
        let partners = partner_pack(gallery, &train, model.target_digit)?;
        let path = dist.join(partners_path(model.source_digit, model.target_digit));
        write(&path, &partners.encode())?;
        println!("    {}", path.display());
    }
    Ok(models)
}

/// Prints what a first visit downloads, raw and gzip-compressed.
pub fn report_sizes(dist: &Path, models: &[SiteModel]) -> Result<()> {
    let mut rows: Vec<(String, PathBuf)> = vec![
        ("wasm".into(), dist.join("pkg/ot3d_wasm_bg.wasm")),
        ("JS glue".into(), dist.join("pkg/ot3d_wasm.js")),
        ("page (html, js, css)".into(), dist.join("app.js")),
    ];
    if let Some(first) = models.first() {
        rows.push((
            format!("weights ({})", first.name),
            dist.join("models")
                .join(&first.name)
                .join(&first.weights_file),
        ));
        rows.push((
            "gallery digits".into(),
            dist.join(gallery_path(first.source_digit)),
        ));
    }
    step("Site: what a first visit downloads");
    let (mut raw_total, mut gz_total) = (0, 0);
    for (what, path) in rows {
        let mut bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        if what.starts_with("page") {
            for other in ["index.html", "style.css"] {
                bytes.extend(std::fs::read(dist.join(other))?);
            }
        }
        let gz = gzip_len(&bytes)?;
        println!(
            "    {what:<28} {:>9.1} KB raw {:>9.1} KB gzip",
            bytes.len() as f64 / 1e3,
            gz as f64 / 1e3
        );
        raw_total += bytes.len();
        gz_total += gz;
    }
    println!(
        "    {:<28} {:>9.1} KB raw {:>9.1} KB gzip",
        "total",
        raw_total as f64 / 1e3,
        gz_total as f64 / 1e3
    );
    Ok(())
}

/// Builds the whole site into www/dist and returns its path.
pub fn build_site(root: &Path) -> Result<PathBuf> {
    let dist = root.join("www/dist");
    build_site_into(root, &dist)?;
    Ok(dist)
}

/// Builds the whole site into `dist` (the tests build theirs in a temporary directory).
pub fn build_site_into(root: &Path, dist: &Path) -> Result<()> {
    crate::tools::ensure_wasm_target()?;
    crate::tools::ensure_wasm_bindgen(root)?;
    let www = root.join("www");
    step(&format!(
        "Site: building the wasm package (release, wasm32) into {}",
        dist.join("pkg").display()
    ));
    std::fs::create_dir_all(dist).with_context(|| format!("cannot create {}", dist.display()))?;
    build(root, GlueTarget::Web, &dist.join("pkg"))?;
    step("Site: copying the page");
    for name in STATIC_FILES {
        copy(&www.join(name), &dist.join(name))?;
    }
    let models = write_content(root, dist)?;
    report_sizes(dist, &models)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_transport_maps_only_default_first() {
        let dir = tempfile::tempdir().unwrap();
        let model = |name: &str, kind: &str, source: u8| {
            let d = dir.path().join(name);
            std::fs::create_dir_all(&d).unwrap();
            let json = serde_json::json!({"kind": kind, "source_digit": source, "target_digit": 5, "weights_file": "transport.bpk"});
            std::fs::write(d.join("manifest.json"), json.to_string()).unwrap();
        };
        model("two-to-four", "transport-map", 2);
        model("three-to-five", "transport-map", 3);
        model("classifier", "digit-classifier", 0);
        let found = shipped_models(dir.path()).unwrap();
        let names: Vec<&str> = found.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["three-to-five", "two-to-four"]);
        assert_eq!(found[1].index_entry()["digits"], "digits/test-2.bin");
        assert_eq!(
            found[1].index_entry()["ot_partners"],
            "digits/ot-partners-2to5.bin"
        );
        let stacked = dir.path().join("stacked");
        std::fs::create_dir_all(&stacked).unwrap();
        let json = serde_json::json!({"kind": "transport-map", "source_digit": 3, "target_digit": 5,
            "weights_file": "transport.bpk", "stacked_on": {"dir": "runs/t1", "sha256": "ab"}});
        std::fs::write(stacked.join("manifest.json"), json.to_string()).unwrap();
        let err = shipped_models(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("stacked map") && err.contains("runs/t1"),
            "{err}"
        );
        std::fs::remove_dir_all(&stacked).unwrap();
        model("Bad Name", "transport-map", 1);
        assert!(
            shipped_models(dir.path())
                .unwrap_err()
                .to_string()
                .contains("a-z, 0-9")
        );
    }
}
