//! Frames built and decoded by hand (RFC 6455 §5.2), independently of
//! `rtwire::proto::frame` and `rtwire::proto::mask`, so that a bug there
//! cannot hide itself.

/// How a frame's payload length is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LenForm {
    /// The shortest form, as RFC 6455 §5.2 requires.
    Minimal,
    /// Always the 16-bit form (non-minimal below 126, truncated above 65535).
    Ext16,
    /// Always the 64-bit form (non-minimal below 65536).
    Ext64,
}

/// XORs `payload` with `key`, byte by byte.
pub fn xor(payload: &mut [u8], key: [u8; 4]) {
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= key[i % 4];
    }
}

/// One frame's bytes. `opcode` is the raw 4-bit value and `rsv` the raw
/// 3-bit value, so reserved ones can be written too.
pub fn build_frame(
    fin: bool,
    rsv: u8,
    opcode: u8,
    mask: Option<[u8; 4]>,
    payload: &[u8],
    form: LenForm,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push((u8::from(fin) << 7) | ((rsv & 7) << 4) | (opcode & 0x0f));
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let len = payload.len();
    let bits = match form {
        LenForm::Minimal if len < 126 => 7,
        LenForm::Minimal if len <= 0xffff => 16,
        LenForm::Minimal | LenForm::Ext64 => 64,
        LenForm::Ext16 => 16,
    };
    match bits {
        7 => out.push(mask_bit | len as u8),
        16 => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
    let body = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        xor(&mut out[body..], key);
    }
    out
}

/// A frame decoded from a connection's output, payload unmasked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireFrame {
    /// FIN bit.
    pub fin: bool,
    /// RSV bits.
    pub rsv: u8,
    /// Raw opcode.
    pub opcode: u8,
    /// Whether the MASK bit was set.
    pub masked: bool,
    /// The payload, unmasked.
    pub payload: Vec<u8>,
}

/// Opcodes.
pub const CONT: u8 = 0x0;
/// Text.
pub const TEXT: u8 = 0x1;
/// Binary.
pub const BINARY: u8 = 0x2;
/// Close.
pub const CLOSE: u8 = 0x8;
/// Ping.
pub const PING: u8 = 0x9;
/// Pong.
pub const PONG: u8 = 0xA;

/// Whether a 4-bit opcode is defined by RFC 6455.
pub fn opcode_defined(op: u8) -> bool {
    matches!(op, CONT | TEXT | BINARY | CLOSE | PING | PONG)
}

/// RFC 6455 §7.4.1 and the IANA registry: the codes an endpoint may send.
pub fn code_allowed(code: u16) -> bool {
    (1000..=1003).contains(&code) || (1007..=1014).contains(&code) || (3000..=4999).contains(&code)
}

/// Decodes a whole output stream strictly: every frame complete, lengths
/// minimal, opcodes defined, control frames final and at most 125 bytes.
pub fn decode_stream(mut bytes: &[u8]) -> Result<Vec<WireFrame>, String> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        if bytes.len() < 2 {
            return Err(format!("partial frame header {bytes:x?}"));
        }
        let fin = bytes[0] & 0x80 != 0;
        let rsv = (bytes[0] >> 4) & 7;
        let opcode = bytes[0] & 0x0f;
        let masked = bytes[1] & 0x80 != 0;
        let (len, mut pos) = match bytes[1] & 0x7f {
            126 => {
                let ext = bytes.get(2..4).ok_or("partial 16-bit length")?;
                let len = u16::from_be_bytes([ext[0], ext[1]]) as u64;
                if len < 126 {
                    return Err(format!("non-minimal 16-bit length {len}"));
                }
                (len, 4)
            }
            127 => {
                let ext = bytes.get(2..10).ok_or("partial 64-bit length")?;
                let mut be = [0u8; 8];
                be.copy_from_slice(ext);
                let len = u64::from_be_bytes(be);
                if len >> 63 != 0 || len <= 0xffff {
                    return Err(format!("bad 64-bit length {len}"));
                }
                (len, 10)
            }
            n => (u64::from(n), 2),
        };
        if !opcode_defined(opcode) {
            return Err(format!("reserved opcode {opcode:#x} written"));
        }
        if opcode >= 8 && (!fin || len > 125) {
            return Err(format!("bad control frame fin={fin} len={len}"));
        }
        let key = if masked {
            let k = bytes.get(pos..pos + 4).ok_or("partial masking key")?;
            pos += 4;
            Some([k[0], k[1], k[2], k[3]])
        } else {
            None
        };
        let len = usize::try_from(len).map_err(|_| "length overflows usize")?;
        let end = pos.checked_add(len).ok_or("length overflow")?;
        let mut payload = bytes
            .get(pos..end)
            .ok_or_else(|| {
                format!(
                    "partial payload: {len} announced, {} there",
                    bytes.len() - pos
                )
            })?
            .to_vec();
        if let Some(key) = key {
            xor(&mut payload, key);
        }
        frames.push(WireFrame {
            fin,
            rsv,
            opcode,
            masked,
            payload,
        });
        bytes = &bytes[end..];
    }
    Ok(frames)
}
