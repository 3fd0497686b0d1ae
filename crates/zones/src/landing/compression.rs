//! Landing objects compressed by extension (`.gz`, `.zst`), decompressed as
//! a stream. A stream that breaks keeps what was decompressed before the break.

use std::io::Read;

use crate::layout::Compression;

/// Where and why a compressed stream broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Broken {
    /// Compressed bytes consumed when the decoder gave up (0-based offset).
    pub(crate) offset: u64,
    pub(crate) message: String,
}

/// The decompressed bytes of `bytes` (all of them, or those before the
/// break), and the break if the stream is corrupt or truncated. Gzip
/// objects may hold several members, zstd objects several frames, as their
/// command-line tools write when files are concatenated.
pub(crate) fn decompress(compression: Compression, bytes: &[u8]) -> (Vec<u8>, Option<Broken>) {
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(4));
    let broken = match compression {
        Compression::None => {
            out.extend_from_slice(bytes);
            None
        }
        Compression::Gzip => {
            let mut decoder = flate2::bufread::MultiGzDecoder::new(bytes);
            // On an error, read_to_end keeps the bytes read before it.
            let result = decoder.read_to_end(&mut out);
            result.err().map(|e| Broken {
                offset: (bytes.len() - decoder.get_ref().len()) as u64,
                message: e.to_string(),
            })
        }
        Compression::Zstd => match zstd::stream::read::Decoder::with_buffer(bytes) {
            Ok(mut decoder) => {
                let result = decoder.read_to_end(&mut out);
                result.err().map(|e| Broken {
                    offset: (bytes.len() - decoder.get_ref().len()) as u64,
                    message: e.to_string(),
                })
            }
            Err(e) => Some(Broken {
                offset: 0,
                message: e.to_string(),
            }),
        },
    };
    (out, broken)
}

/// `bytes` compressed as `compression` at its tool's default level (gzip 6,
/// zstd 3): how an object that erasure rewrites is stored again.
pub(crate) fn compress(compression: Compression, bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    match compression {
        Compression::None => bytes.to_vec(),
        Compression::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder
                .write_all(bytes)
                .expect("writing to a Vec does not fail");
            encoder.finish().expect("writing to a Vec does not fail")
        }
        Compression::Zstd => {
            zstd::stream::encode_all(bytes, 3).expect("encoding into a Vec does not fail")
        }
    }
}
