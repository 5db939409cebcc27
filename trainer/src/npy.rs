//! Writing float32 arrays as NumPy `.npy` (format 1.0), the exchange format for anyone who
//! wants results in Python: `numpy.load(path)`.

use crate::atomic_file::write_atomic;
use std::path::Path;

/// Encodes `values` (C order) with `shape` as `.npy` bytes.
pub fn encode_f32(shape: &[usize], values: &[f32]) -> Vec<u8> {
    assert_eq!(
        shape.iter().product::<usize>(),
        values.len(),
        "npy: shape does not match the data"
    );
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_text}, }}");
    // Magic (6) + version (2) + header length (2) + header, padded with spaces to a
    // multiple of 64 and ended by a newline.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + values.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Writes a float32 `.npy` file atomically.
pub fn write_f32(path: &Path, shape: &[usize], values: &[f32]) -> std::io::Result<()> {
    write_atomic(path, &encode_f32(shape, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_aligned_and_data_follows() {
        let bytes = encode_f32(&[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.5]);
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
        assert!(header.contains("'shape': (2, 3)") && header.ends_with('\n'));
        assert_eq!(&bytes[10 + header_len + 20..], &5.5f32.to_le_bytes());
        assert!(
            std::str::from_utf8(&encode_f32(&[4], &[0.0; 4])[10..])
                .unwrap()
                .contains("(4,)")
        );
    }
}
