//! An echo server on tokio-tungstenite, written as its own example echo
//! server is: split the stream, keep the data messages, `forward` them back
//! (which flushes whenever no more input is ready). Default configuration
//! (64 MiB messages, 16 MiB frames).

use futures_util::{future, StreamExt, TryStreamExt};

fn main() -> std::process::ExitCode {
    rtwire_peers::run("tungstenite-echo", |stream| async move {
        let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
            return;
        };
        let (write, read) = ws.split();
        let _ = read
            .try_filter(|message| future::ready(message.is_text() || message.is_binary()))
            .forward(write)
            .await;
    })
}
