//! Landing objects compressed by extension (`.gz`, `.zst`), decompressed as
//! a stream: compressed bytes are pushed in pieces of any size and the
//! decompressed bytes come out piece by piece, so no object is ever held
//! whole. A stream that breaks keeps what was decompressed before the break.

use std::io::Write;

use crate::layout::Compression;

/// Where and why a compressed stream broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Broken {
    /// Compressed bytes consumed when the decoder gave up (0-based offset).
    pub(crate) offset: u64,
    pub(crate) message: String,
}

/// Compressed bytes go in at most this many at a time, so one push never
/// produces more than a bounded amount of decompressed bytes (gzip expands
/// at most about 1032:1).
const STEP: usize = 16 << 10;

/// A push decoder for one object. Gzip objects may hold several members,
/// zstd objects several frames, as their command-line tools write when
/// files are concatenated.
pub(crate) enum Decoder {
    Plain,
    Gzip(Box<flate2::write::MultiGzDecoder<Vec<u8>>>),
    Zstd {
        decoder: Box<zstd::stream::raw::Decoder<'static>>,
        /// The decoder's last hint: 0 when a frame has just ended, so the
        /// stream may end here.
        in_frame: bool,
        out: Vec<u8>,
    },
    /// The stream broke; what follows is not decoded.
    Broken,
}

impl Decoder {
    pub(crate) fn new(compression: Compression) -> Result<Decoder, Broken> {
        Ok(match compression {
            Compression::None => Decoder::Plain,
            Compression::Gzip => {
                Decoder::Gzip(Box::new(flate2::write::MultiGzDecoder::new(Vec::new())))
            }
            Compression::Zstd => Decoder::Zstd {
                decoder: Box::new(zstd::stream::raw::Decoder::new().map_err(|e| Broken {
                    offset: 0,
                    message: e.to_string(),
                })?),
                in_frame: false,
                out: Vec::with_capacity(zstd::zstd_safe::DCtx::out_size()),
            },
        })
    }

    /// Decodes `bytes`, the compressed bytes after the first `offset`,
    /// handing each decompressed piece to `sink`. A break turns the
    /// decoder into [`Decoder::Broken`] and is returned.
    pub(crate) fn push(
        &mut self,
        offset: u64,
        bytes: &[u8],
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<(), Broken> {
        let result = match self {
            Decoder::Plain => {
                sink(bytes);
                Ok(())
            }
            Decoder::Broken => Ok(()),
            Decoder::Gzip(decoder) => gzip_push(decoder, offset, bytes, sink),
            Decoder::Zstd {
                decoder,
                in_frame,
                out,
            } => zstd_push(decoder, in_frame, out, offset, bytes, sink),
        };
        if result.is_err() {
            *self = Decoder::Broken;
        }
        result
    }

    /// The end of the object (`offset` compressed bytes in all): a stream
    /// cut off inside a member or frame is a break at its end.
    pub(crate) fn finish(
        &mut self,
        offset: u64,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<(), Broken> {
        let result = match self {
            Decoder::Plain | Decoder::Broken => Ok(()),
            Decoder::Gzip(decoder) => {
                let finished = decoder.try_finish();
                drain(decoder.get_mut(), sink);
                finished.map_err(|e| Broken {
                    offset,
                    message: e.to_string(),
                })
            }
            Decoder::Zstd { in_frame, .. } => match *in_frame {
                true => Err(Broken {
                    offset,
                    message: "incomplete frame".to_string(),
                }),
                false => Ok(()),
            },
        };
        if result.is_err() {
            *self = Decoder::Broken;
        }
        result
    }
}

/// A whole object decompressed at once (the erasure rewrite, which must
/// hold the object to write it back): the bytes before a break, and the break.
pub(crate) fn decompress(compression: Compression, bytes: &[u8]) -> (Vec<u8>, Option<Broken>) {
    let mut out = Vec::with_capacity(bytes.len());
    let mut decoder = match Decoder::new(compression) {
        Ok(decoder) => decoder,
        Err(broken) => return (out, Some(broken)),
    };
    let mut sink = |piece: &[u8]| out.extend_from_slice(piece);
    let broken = decoder
        .push(0, bytes, &mut sink)
        .and_then(|()| decoder.finish(bytes.len() as u64, &mut sink))
        .err();
    (out, broken)
}

fn drain(out: &mut Vec<u8>, sink: &mut dyn FnMut(&[u8])) {
    if !out.is_empty() {
        sink(out);
        out.clear();
    }
}

fn gzip_push(
    decoder: &mut flate2::write::MultiGzDecoder<Vec<u8>>,
    offset: u64,
    bytes: &[u8],
    sink: &mut dyn FnMut(&[u8]),
) -> Result<(), Broken> {
    let mut consumed = 0;
    while consumed < bytes.len() {
        let end = bytes.len().min(consumed + STEP);
        let written = decoder.write(&bytes[consumed..end]);
        drain(decoder.get_mut(), sink);
        match written {
            Ok(0) => {
                return Err(Broken {
                    offset: offset + consumed as u64,
                    message: "the decoder accepts no more input".to_string(),
                });
            }
            Ok(n) => consumed += n,
            Err(e) => {
                return Err(Broken {
                    offset: offset + consumed as u64,
                    message: e.to_string(),
                });
            }
        }
    }
    Ok(())
}

fn zstd_push(
    decoder: &mut zstd::stream::raw::Decoder<'static>,
    in_frame: &mut bool,
    out: &mut Vec<u8>,
    offset: u64,
    bytes: &[u8],
    sink: &mut dyn FnMut(&[u8]),
) -> Result<(), Broken> {
    use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
    let mut input = InBuffer::around(bytes);
    let capacity = out.capacity();
    loop {
        if !*in_frame && input.pos() < bytes.len() {
            // A new frame starts (the first, or one after a frame that ended).
            decoder.reinit().map_err(|e| Broken {
                offset: offset + input.pos() as u64,
                message: e.to_string(),
            })?;
        }
        let before = input.pos();
        out.clear();
        let mut output = OutBuffer::around(out);
        let hint = decoder.run(&mut input, &mut output).map_err(|e| Broken {
            offset: offset + before as u64,
            message: e.to_string(),
        })?;
        // A full output buffer may leave more output held back.
        let full = output.pos() == capacity;
        *in_frame = hint != 0;
        drain(out, sink);
        if !full && (input.pos() == bytes.len() || input.pos() == before) {
            break;
        }
    }
    Ok(())
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
