//! The publisher: `POST /channels/{name}` (rtwire) or `POST /pub/{name}`
//! (Nchan) on one keep-alive connection.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use crate::counted::Traffic;
use crate::formats::nchan_channel_info;
use crate::http::{self, find, HttpConn};
use crate::options::Server;
use crate::payload::{self, now_ns};

#[derive(Debug)]
pub struct Publisher {
    conn: HttpConn,
    host: String,
    target: String,
    server: Server,
}

impl Publisher {
    pub async fn connect(
        addr: SocketAddr,
        host: &str,
        channel: &str,
        server: Server,
    ) -> Result<Publisher, String> {
        let target = match server {
            Server::Rtwire => format!("/channels/{channel}"),
            Server::Nchan => format!("/pub/{channel}"),
        };
        Ok(Publisher {
            conn: HttpConn::connect(addr).await?,
            host: host.to_owned(),
            target,
            server,
        })
    }

    /// The bytes carried so far.
    pub fn traffic(&self) -> Traffic {
        self.conn.traffic()
    }

    /// Publishes `body` and waits for its id.
    pub async fn publish(&mut self, body: &[u8]) -> Result<String, String> {
        match self.server {
            Server::Rtwire => self.publish_rtwire(body).await,
            Server::Nchan => self.publish_nchan(body).await,
        }
    }

    async fn publish_rtwire(&mut self, body: &[u8]) -> Result<String, String> {
        self.conn
            .send(&http::post(&self.host, &self.target, body))
            .await?;
        let (status, answer) = self.conn.response().await?;
        // {"id":"1a2b3c4d-7"}
        let id = find(answer, br#""id":""#)
            .map(|i| &answer[i + 6..])
            .and_then(|rest| Some(&rest[..rest.iter().position(|&b| b == b'"')?]));
        match (status, id) {
            (202, Some(id)) => Ok(String::from_utf8_lossy(id).into_owned()),
            _ => Err(format!(
                "publish answered {status}: {:?}",
                String::from_utf8_lossy(answer)
            )),
        }
    }

    /// Nchan answers with the channel's info, not a message id of its own:
    /// 201 when it had subscribers, 202 when none. The id is the channel's
    /// newest message's, which is this one's on a channel with one
    /// publisher. (Latencies do not need it: they come from the stamp in
    /// the payload, as for rtwire.)
    async fn publish_nchan(&mut self, body: &[u8]) -> Result<String, String> {
        let accept = "Accept: text/json\r\n";
        self.conn
            .send(&http::post_with(&self.host, &self.target, accept, body))
            .await?;
        let (status, answer) = self.conn.response().await?;
        let failed = || {
            format!(
                "publish answered {status}: {:?}",
                String::from_utf8_lossy(answer)
            )
        };
        if status != 201 && status != 202 {
            return Err(failed());
        }
        nchan_channel_info(answer)
            .map(|info| info.last_message_id)
            .map_err(|e| format!("{}: {e}", failed()))
    }

    /// Publishes messages 0..`messages` of `size` bytes, message k at
    /// `start + k / rate`, each stamped just before it is written. A
    /// publish that takes longer than the spacing delays the next one, not
    /// the ones after it. Returns when the last is acknowledged, with the
    /// longest time a publish took (stamp to answer, in ns): the part of a
    /// latency spent before the server had the message.
    pub async fn run(
        &mut self,
        start: Instant,
        messages: u32,
        size: usize,
        rate: f64,
    ) -> Result<u64, String> {
        let mut slowest = 0;
        for seq in 0..messages {
            tokio::time::sleep_until(start + Duration::from_secs_f64(f64::from(seq) / rate)).await;
            let stamp = now_ns();
            self.publish(&payload::make(seq, stamp, size)).await?;
            slowest = slowest.max(now_ns() - stamp);
        }
        Ok(slowest)
    }
}
