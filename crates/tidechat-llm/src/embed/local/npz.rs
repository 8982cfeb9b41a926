//! Just enough of NumPy's `.npz` format (a zip of `.npy` files) to read the
//! model weights, and to write them (tests build tiny models with it).
//!
//! Supported `.npy`: format versions 1–3, little-endian or byte-sized dtypes
//! `<f4`, `<f8`, `|u1`, `|i1`, C order. Anything else is an error, not a
//! guess.

use std::io::{Read, Seek, Write};

/// Why an `.npz` could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum NpzError {
    #[error("not a readable zip archive")]
    Zip,
    #[error("array {0:?} is missing")]
    Missing(String),
    #[error("array {name:?}: {reason}")]
    Array { name: String, reason: &'static str },
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// The element data of one array.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    F32(Vec<f32>),
    F64(Vec<f64>),
    U8(Vec<u8>),
    I8(Vec<i8>),
}

/// One array: shape (empty for a scalar) and elements in C order.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Data,
}

impl Array {
    pub fn f32(shape: &[usize], data: Vec<f32>) -> Self {
        Self {
            shape: shape.to_vec(),
            data: Data::F32(data),
        }
    }

    pub fn u8(shape: &[usize], data: Vec<u8>) -> Self {
        Self {
            shape: shape.to_vec(),
            data: Data::U8(data),
        }
    }

    pub fn f64_scalar(value: f64) -> Self {
        Self {
            shape: Vec::new(),
            data: Data::F64(vec![value]),
        }
    }

    fn descr(&self) -> &'static str {
        match self.data {
            Data::F32(_) => "<f4",
            Data::F64(_) => "<f8",
            Data::U8(_) => "|u1",
            Data::I8(_) => "|i1",
        }
    }

    fn len(&self) -> usize {
        match &self.data {
            Data::F32(v) => v.len(),
            Data::F64(v) => v.len(),
            Data::U8(v) => v.len(),
            Data::I8(v) => v.len(),
        }
    }
}

/// An open `.npz`; arrays are decompressed one at a time on request.
pub struct Npz<R: Read + Seek> {
    zip: zip::ZipArchive<R>,
}

impl<R: Read + Seek> Npz<R> {
    pub fn new(reader: R) -> Result<Self, NpzError> {
        let zip = zip::ZipArchive::new(reader).map_err(|_| NpzError::Zip)?;
        Ok(Self { zip })
    }

    /// Array names (without `.npy`), in archive order.
    pub fn names(&self) -> Vec<String> {
        self.zip
            .file_names()
            .filter_map(|n| n.strip_suffix(".npy"))
            .map(str::to_string)
            .collect()
    }

    /// Reads the array `name` (stored as `name.npy`).
    pub fn array(&mut self, name: &str) -> Result<Array, NpzError> {
        let mut file = match self.zip.by_name(&format!("{name}.npy")) {
            Ok(file) => file,
            Err(zip::result::ZipError::FileNotFound) => {
                return Err(NpzError::Missing(name.to_string()))
            }
            Err(_) => return Err(NpzError::Zip),
        };
        // The size in the archive's directory is only a hint: it is capped
        // so that a corrupt header cannot make us reserve gigabytes.
        let hint = usize::try_from(file.size()).unwrap_or(0).min(1 << 28);
        let mut bytes = Vec::with_capacity(hint);
        file.read_to_end(&mut bytes).map_err(|_| NpzError::Array {
            name: name.to_string(),
            reason: "cannot be decompressed",
        })?;
        parse_npy(&bytes).map_err(|reason| NpzError::Array {
            name: name.to_string(),
            reason,
        })
    }
}

/// Parses one `.npy` file.
pub fn parse_npy(bytes: &[u8]) -> Result<Array, &'static str> {
    let rest = bytes
        .strip_prefix(b"\x93NUMPY")
        .ok_or("not an .npy array")?;
    let (major, rest) = rest.split_first().ok_or("truncated header")?;
    let (_minor, rest) = rest.split_first().ok_or("truncated header")?;
    let (header_len, rest) = match major {
        1 => {
            let b = rest.get(..2).ok_or("truncated header")?;
            (usize::from(u16::from_le_bytes([b[0], b[1]])), &rest[2..])
        }
        2 | 3 => {
            let b = rest.get(..4).ok_or("truncated header")?;
            (
                u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize,
                &rest[4..],
            )
        }
        _ => return Err("unsupported .npy version"),
    };
    let header = rest.get(..header_len).ok_or("truncated header")?;
    let header = std::str::from_utf8(header).map_err(|_| "header is not text")?;
    let body = &rest[header_len..];
    let descr = dict_value(header, "descr").ok_or("no dtype in header")?;
    let fortran = dict_value(header, "fortran_order").ok_or("no order in header")?;
    if fortran.trim() != "False" {
        return Err("Fortran-order arrays are not supported");
    }
    let shape = parse_shape(dict_value(header, "shape").ok_or("no shape in header")?)?;
    let count = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or("shape too large")?;
    let descr = descr.trim().trim_matches(|c| c == '\'' || c == '"');
    let size = match descr {
        "<f4" => 4,
        "<f8" => 8,
        "|u1" | "<u1" | "|i1" | "<i1" => 1,
        _ => return Err("unsupported dtype"),
    };
    let body = body
        .get(..count.checked_mul(size).ok_or("shape too large")?)
        .ok_or("data shorter than its shape")?;
    let data = match descr {
        "<f4" => Data::F32(
            body.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        ),
        "<f8" => Data::F64(
            body.chunks_exact(8)
                .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                .collect(),
        ),
        "|i1" | "<i1" => Data::I8(body.iter().map(|&b| b as i8).collect()),
        _ => Data::U8(body.to_vec()),
    };
    Ok(Array { shape, data })
}

/// The text after `'key':` in a Python dict literal, up to the next top-level
/// comma (a tuple's commas are inside parentheses).
fn dict_value<'h>(header: &'h str, key: &str) -> Option<&'h str> {
    let at = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = &header[at + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?;
    let mut depth = 0i32;
    for (i, c) in rest.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' | '}' if depth == 0 => return Some(&rest[..i]),
            _ => {}
        }
    }
    None
}

fn parse_shape(text: &str) -> Result<Vec<usize>, &'static str> {
    let inner = text
        .trim()
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or("malformed shape")?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| "malformed shape"))
        .collect()
}

/// Serialises `array` as a version-1 `.npy`.
pub fn to_npy(array: &Array) -> Vec<u8> {
    let shape = match array.shape.as_slice() {
        [] => "()".to_string(),
        [n] => format!("({n},)"),
        dims => format!(
            "({})",
            dims.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}",
        array.descr()
    );
    // Data starts on a 64-byte boundary, header ends with a newline.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + array.len() * 8);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    match &array.data {
        Data::F32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Data::F64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Data::U8(v) => out.extend_from_slice(v),
        Data::I8(v) => v.iter().for_each(|x| out.push(*x as u8)),
    }
    out
}

/// Writes `arrays` as a deflate-compressed `.npz`.
pub fn write_npz<W: Write + Seek>(writer: W, arrays: &[(&str, Array)]) -> Result<(), NpzError> {
    let mut zip = zip::ZipWriter::new(writer);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, array) in arrays {
        zip.start_file(format!("{name}.npy"), options)
            .map_err(|_| NpzError::Zip)?;
        zip.write_all(&to_npy(array))?;
    }
    zip.finish().map_err(|_| NpzError::Zip)?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let arrays = [
            ("m", Array::f32(&[2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.5])),
            ("v", Array::u8(&[4], vec![0, 1, 254, 255])),
            ("eps", Array::f64_scalar(1e-12)),
        ];
        let mut buf = std::io::Cursor::new(Vec::new());
        write_npz(&mut buf, &arrays).unwrap();
        let mut npz = Npz::new(std::io::Cursor::new(buf.into_inner())).unwrap();
        assert_eq!(npz.names(), vec!["m", "v", "eps"]);
        for (name, array) in &arrays {
            assert_eq!(&npz.array(name).unwrap(), array);
        }
        assert!(matches!(npz.array("nope"), Err(NpzError::Missing(_))));
        assert!(Npz::new(std::io::Cursor::new(b"garbage".to_vec())).is_err());
        let mut npy = to_npy(&arrays[0].1);
        assert_eq!((npy.len() - 6) % 2, 0);
        npy.truncate(npy.len() - 1);
        assert_eq!(parse_npy(&npy), Err("data shorter than its shape"));
        assert_eq!(parse_npy(b"\x93NUMPY"), Err("truncated header"));
    }
}
