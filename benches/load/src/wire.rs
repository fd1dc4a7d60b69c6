//! The client's side of the wire: masked frames built once, and a reader
//! that walks the server's frames without assembling messages.

use rtwire::proto::frame::{FrameHeader, OpCode};
use rtwire::proto::mask::apply_mask;
use tokio::io::AsyncReadExt;
use tokio::net::tcp::ReadHalf;

/// One masking key for every frame: the server unmasks each frame all the
/// same, and the client saves drawing and applying a key per message.
const KEY: [u8; 4] = [0x5a, 0x3c, 0x96, 0xe1];

/// Small frames are written up to this many bytes at a time.
const BATCH_BYTES: usize = 64 << 10;

/// The frames every connection sends: one masked frame, repeated enough
/// times that several queued small messages go out in one write.
#[derive(Debug)]
pub struct Outgoing {
    frame_len: usize,
    batch: Vec<u8>,
    /// The unmasked payload, to verify echoes against.
    payload: Vec<u8>,
}

impl Outgoing {
    /// The frame for a message of `size` bytes; at most `inflight` frames
    /// are ever queued at once.
    pub fn new(size: usize, inflight: usize, text: bool) -> Outgoing {
        // ASCII letters: valid UTF-8 for a text message, varied for binary.
        let payload: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
        let header = FrameHeader {
            fin: true,
            rsv: 0,
            opcode: if text { OpCode::Text } else { OpCode::Binary },
            mask: Some(KEY),
            payload_len: size as u64,
        };
        let (head, head_len) = header.encode();
        let mut frame = Vec::with_capacity(head_len + size);
        frame.extend_from_slice(&head[..head_len]);
        frame.extend_from_slice(&payload);
        apply_mask(&mut frame[head_len..], KEY, 0);
        let copies = (BATCH_BYTES / frame.len()).clamp(1, inflight);
        let frame_len = frame.len();
        let batch = frame.repeat(copies);
        Outgoing {
            frame_len,
            batch,
            payload,
        }
    }

    /// The bytes to write next with `queued` frames waiting and `offset`
    /// bytes of the first already written.
    pub fn chunk(&self, queued: usize, offset: usize) -> &[u8] {
        let frames = queued.min(self.batch.len() / self.frame_len);
        &self.batch[offset..frames * self.frame_len]
    }

    /// After writing `n` more bytes from `offset`: how many frames were
    /// completed, and the offset into the next.
    pub fn advance(&self, offset: usize, n: usize) -> (usize, usize) {
        let total = offset + n;
        (total / self.frame_len, total % self.frame_len)
    }
}

/// The masked close frame with code 1000.
pub fn close_frame() -> Vec<u8> {
    let mut frame = vec![0x88, 0x82, KEY[0], KEY[1], KEY[2], KEY[3], 0x03, 0xe8];
    apply_mask(&mut frame[6..], KEY, 0);
    frame
}

/// What one read brought.
#[derive(Debug, Default)]
pub struct Update {
    /// Whole data messages completed.
    pub messages: usize,
    /// Of those, how many did not match what was sent (length, or bytes
    /// with `--verify`).
    pub bad: u64,
    /// The server closed: a close frame or EOF.
    pub closed: bool,
}

/// Walks the server's frames in a fixed buffer, skipping payloads.
#[derive(Debug)]
pub struct Reader<'a> {
    outgoing: &'a Outgoing,
    verify: bool,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Payload bytes of the current frame still to come.
    remaining: u64,
    fin: bool,
    data: bool,
    /// Bytes of the current message so far.
    message_len: usize,
    message_bad: bool,
    unparsed_leftover: bool,
}

impl<'a> Reader<'a> {
    /// A reader starting with the bytes read past the handshake.
    pub fn new(outgoing: &'a Outgoing, verify: bool, leftover: Vec<u8>) -> Reader<'a> {
        // Room for several echoes of a small message, capped for big ones.
        let size = (outgoing.frame_len * 4).clamp(16 << 10, 256 << 10);
        let mut buf = vec![0; size.max(leftover.len())];
        buf[..leftover.len()].copy_from_slice(&leftover);
        Reader {
            outgoing,
            verify,
            start: 0,
            end: leftover.len(),
            buf,
            remaining: 0,
            fin: false,
            data: false,
            message_len: 0,
            message_bad: false,
            unparsed_leftover: !leftover.is_empty(),
        }
    }

    /// Reads once and walks what arrived. Cancel-safe: the only await is
    /// the read.
    pub async fn read_from(&mut self, rd: &mut ReadHalf<'_>) -> Result<Update, String> {
        if self.unparsed_leftover {
            self.unparsed_leftover = false;
            return self.parse();
        }
        if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = rd
            .read(&mut self.buf[self.end..])
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Ok(Update {
                closed: true,
                ..Update::default()
            });
        }
        self.end += n;
        self.parse()
    }

    fn parse(&mut self) -> Result<Update, String> {
        let mut update = Update::default();
        loop {
            if self.remaining > 0 {
                let take = (self.remaining.min((self.end - self.start) as u64)) as usize;
                if take == 0 {
                    break;
                }
                if self.data && self.verify {
                    let expected = self
                        .outgoing
                        .payload
                        .get(self.message_len..self.message_len + take);
                    if expected != Some(&self.buf[self.start..self.start + take]) {
                        self.message_bad = true;
                    }
                }
                self.start += take;
                self.remaining -= take as u64;
                if self.data {
                    self.message_len += take;
                }
                if self.remaining > 0 {
                    break;
                }
                self.frame_done(&mut update);
                continue;
            }
            let header = match FrameHeader::decode(&self.buf[self.start..self.end]) {
                Ok(Some((header, len))) => {
                    self.start += len;
                    header
                }
                Ok(None) => break,
                Err(e) => return Err(format!("bad frame from the server: {e}")),
            };
            if header.mask.is_some() || header.rsv != 0 {
                return Err(format!("unexpected frame from the server: {header:?}"));
            }
            self.fin = header.fin;
            self.remaining = header.payload_len;
            self.data = match header.opcode {
                OpCode::Text | OpCode::Binary => {
                    self.message_len = 0;
                    self.message_bad = false;
                    true
                }
                OpCode::Continuation => true,
                OpCode::Close => {
                    update.closed = true;
                    return Ok(update);
                }
                // Servers under test send no pings; anything else is skipped.
                OpCode::Ping | OpCode::Pong => false,
            };
            if self.remaining == 0 {
                self.frame_done(&mut update);
            }
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        Ok(update)
    }

    fn frame_done(&mut self, update: &mut Update) {
        if self.data && self.fin {
            update.messages += 1;
            if self.message_bad || self.message_len != self.outgoing.payload.len() {
                update.bad += 1;
            }
            self.message_len = 0;
            self.message_bad = false;
        }
    }
}
