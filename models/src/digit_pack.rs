//! A compact file of MNIST digits of one class (the page's gallery of held-out test
//! digits): raw 28×28 pixels plus each digit's index in its split, so the page voxelizes
//! exactly what the trainer would.
//!
//! Layout (little-endian): magic `OT3DPK01`, digit `u8`, split `u8` (0 train, 1 test),
//! two zero bytes, count `u32`, count × index `u32`, count × 784 pixel bytes.

use crate::mnist::{LabeledImages, MNIST_PIXELS, Split};

pub const MAGIC: &[u8; 8] = b"OT3DPK01";
const HEADER: usize = 16;
/// More than any MNIST class has in one split: a larger count is a corrupt header.
pub const MAX_DIGITS: usize = 10_000;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DigitPackError {
    #[error(
        "not a digit pack (expected it to start with OT3DPK01); rebuild it with `ot3d export-digits`"
    )]
    BadMagic,
    #[error("digit pack header is cut short ({0} bytes); the file is truncated")]
    Truncated(usize),
    #[error("digit pack declares digit class {0}, which is not 0-9")]
    BadDigit(u8),
    #[error("digit pack declares split code {0}, which is neither 0 (train) nor 1 (test)")]
    BadSplit(u8),
    #[error("digit pack declares {0} digits; at most {MAX_DIGITS} are allowed")]
    TooMany(usize),
    #[error("digit pack of {count} digits must be {expected} bytes long, but is {found}")]
    WrongLength {
        count: usize,
        expected: usize,
        found: usize,
    },
    #[error(
        "the data has only {available} digits of class {digit} in the {split} split; asked for {wanted}"
    )]
    NotEnough {
        digit: u8,
        split: &'static str,
        available: usize,
        wanted: usize,
    },
}

/// Digits of one class from one split.
#[derive(Debug, Clone, PartialEq)]
pub struct DigitPack {
    pub digit: u8,
    pub split: Split,
    /// Index of each digit in its split's IDX files.
    pub indices: Vec<u32>,
    pub images: Vec<[u8; MNIST_PIXELS]>,
}

impl DigitPack {
    /// The first `count` digits of class `digit` in `images` (in file order, so the same
    /// data always gives the same pack).
    pub fn select(
        images: &LabeledImages,
        split: Split,
        digit: u8,
        count: usize,
    ) -> Result<Self, DigitPackError> {
        if digit > 9 {
            return Err(DigitPackError::BadDigit(digit));
        }
        if count > MAX_DIGITS {
            return Err(DigitPackError::TooMany(count));
        }
        let all = images.indices_of(digit);
        if all.len() < count {
            return Err(DigitPackError::NotEnough {
                digit,
                split: split.name(),
                available: all.len(),
                wanted: count,
            });
        }
        let chosen = &all[..count];
        Ok(Self {
            digit,
            split,
            indices: chosen.iter().map(|&i| i as u32).collect(),
            images: chosen.iter().map(|&i| images.images[i]).collect(),
        })
    }

    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + self.len() * (4 + MNIST_PIXELS));
        out.extend_from_slice(MAGIC);
        out.push(self.digit);
        out.push(match self.split {
            Split::Train => 0,
            Split::Test => 1,
        });
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(self.len() as u32).to_le_bytes());
        for index in &self.indices {
            out.extend_from_slice(&index.to_le_bytes());
        }
        for image in &self.images {
            out.extend_from_slice(image);
        }
        out
    }

    /// Parses and checks a pack; every size is checked before anything is allocated.
    pub fn decode(bytes: &[u8]) -> Result<Self, DigitPackError> {
        if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            return Err(DigitPackError::BadMagic);
        }
        if bytes.len() < HEADER {
            return Err(DigitPackError::Truncated(bytes.len()));
        }
        let digit = bytes[8];
        if digit > 9 {
            return Err(DigitPackError::BadDigit(digit));
        }
        let split = match bytes[9] {
            0 => Split::Train,
            1 => Split::Test,
            other => return Err(DigitPackError::BadSplit(other)),
        };
        let count = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")) as usize;
        if count > MAX_DIGITS {
            return Err(DigitPackError::TooMany(count));
        }
        let expected = HEADER + count * (4 + MNIST_PIXELS);
        if bytes.len() != expected {
            return Err(DigitPackError::WrongLength {
                count,
                expected,
                found: bytes.len(),
            });
        }
        let body = &bytes[HEADER..];
        let (index_bytes, pixel_bytes) = body.split_at(count * 4);
        Ok(Self {
            digit,
            split,
            indices: index_bytes
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect(),
            images: pixel_bytes
                .chunks_exact(MNIST_PIXELS)
                .map(|c| c.try_into().expect("784 bytes"))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mnist::{encode_images, encode_labels};

    fn images() -> LabeledImages {
        let pixels: Vec<[u8; MNIST_PIXELS]> = (0..6u8).map(|i| [i; MNIST_PIXELS]).collect();
        let labels = [3, 5, 3, 3, 1, 3];
        LabeledImages::parse(&encode_images(&pixels), &encode_labels(&labels)).unwrap()
    }

    #[test]
    fn select_round_trips_and_keeps_file_order() {
        let pack = DigitPack::select(&images(), Split::Test, 3, 3).unwrap();
        assert_eq!(pack.indices, vec![0, 2, 3]);
        assert_eq!(pack.images[1][0], 2);
        let bytes = pack.encode();
        assert_eq!(bytes.len(), 16 + 3 * (4 + 784));
        assert_eq!(DigitPack::decode(&bytes).unwrap(), pack);
    }

    #[test]
    fn refuses_bad_requests_and_corrupt_files() {
        assert!(matches!(
            DigitPack::select(&images(), Split::Test, 3, 5),
            Err(DigitPackError::NotEnough { available: 4, .. })
        ));
        assert_eq!(
            DigitPack::select(&images(), Split::Test, 10, 1),
            Err(DigitPackError::BadDigit(10))
        );
        let good = DigitPack::select(&images(), Split::Train, 3, 2)
            .unwrap()
            .encode();
        assert_eq!(DigitPack::decode(b"PNG"), Err(DigitPackError::BadMagic));
        assert_eq!(
            DigitPack::decode(&good[..12]),
            Err(DigitPackError::Truncated(12))
        );
        assert!(matches!(
            DigitPack::decode(&good[..good.len() - 1]),
            Err(DigitPackError::WrongLength { count: 2, .. })
        ));
        let mut huge = good.clone();
        huge[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            DigitPack::decode(&huge),
            Err(DigitPackError::TooMany(u32::MAX as usize))
        );
        let mut split = good.clone();
        split[9] = 7;
        assert_eq!(DigitPack::decode(&split), Err(DigitPackError::BadSplit(7)));
        let mut digit = good;
        digit[8] = 12;
        assert_eq!(DigitPack::decode(&digit), Err(DigitPackError::BadDigit(12)));
    }
}
