//! `rtwire autobahn-client`: the testee client for Autobahn's fuzzingserver.

use rtwire::proto::deflate::DeflateConfig;
use rtwire::proto::Message;
use rtwire::ws::{self, ConnectConfig};

use crate::cli::AutobahnArgs;
use crate::echo::echo;

/// Runs every case the fuzzingserver has, then asks for its reports.
pub async fn autobahn_client(args: AutobahnArgs) -> Result<(), String> {
    let base = args.url.trim_end_matches('/');
    let agent = &args.agent;
    let count = case_count(base).await?;
    eprintln!("rtwire autobahn-client: {count} cases");
    for case in 1..=count {
        let url = format!("{base}/runCase?case={case}&agent={agent}");
        let config = ConnectConfig::default().deflate(DeflateConfig::default());
        match ws::connect_with(&url, &config).await {
            Ok((mut socket, _)) => {
                let _ = echo(&mut socket).await;
            }
            Err(e) => tracing::warn!("case {case}: {e}"),
        }
    }
    let url = format!("{base}/updateReports?agent={agent}");
    let (mut socket, _) = ws::connect(&url)
        .await
        .map_err(|e| format!("updateReports: {e}"))?;
    while let Ok(Some(_)) = socket.recv().await {}
    Ok(())
}

async fn case_count(base: &str) -> Result<u32, String> {
    let url = format!("{base}/getCaseCount");
    let (mut socket, _) = ws::connect(&url)
        .await
        .map_err(|e| format!("getCaseCount: {e}"))?;
    let mut count = None;
    while let Ok(Some(message)) = socket.recv().await {
        if let Message::Text(text) = message {
            count = text.as_str().trim().parse().ok();
        }
    }
    count.ok_or_else(|| "getCaseCount: no count received".to_owned())
}
