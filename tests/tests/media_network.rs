//! A network change in the middle of a call, end to end: the real relay, the real agent on its
//! simulated sources, the agent's kiosk page and a clerk, each in headless Chromium.
//!
//! The relay advertises 127.0.0.2 as its media address, where a UDP path the test controls
//! (`e2e::UdpPath`) forwards to its socket on 127.0.0.1, as a NAT between kiosk and relay
//! would; the agent's media leaves from 127.0.0.3. Mid-call the path strands every flow the
//! agent has (its connection's datagrams are dropped both ways from then on, as when a kiosk's
//! uplink or address changes). The agent notices, makes a new connection (new local ports,
//! so new flows that pass), and the call goes on: the clerk decodes the kiosk camera again,
//! the kiosk page shows the clerk again over its unchanged screen connection, and the agent
//! plays the clerk's voice again.

mod media {
    pub mod call;
}

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{Context, Result, bail};
use e2e::{Agent, Browser, DemoData, Relay, UdpPath};
use media::call::{
    LIMIT, SPY, agent_media, clerk_stats, grows, kiosk_page_stats, num, sign_in, take_ticket,
    wait_agent_media,
};

const AGENT_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
const PATH_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const AGENT_MEDIA: &str =
    "\n[media]\nsimulated = true\nudp_bind = \"127.0.0.3:0\"\nloopback_candidates = true\n";
const RELAY_MEDIA: [&str; 6] = [
    "--set",
    "media.enabled=true",
    "--set",
    "media.udp_listen=127.0.0.1:0",
    "--set",
    "media.advertised_ip=\"127.0.0.2\"",
];

#[tokio::test]
async fn the_call_continues_after_the_kiosks_network_changes() -> Result<()> {
    let data = DemoData::create().await?;
    let relay = Relay::start(&data, &RELAY_MEDIA).await?;
    let sfu = relay.media_udp.context("the relay's media socket")?;
    let path = UdpPath::start(SocketAddr::new(PATH_IP, sfu.port()), sfu).await?;
    let agent = Agent::start_with(&data, &relay, AGENT_MEDIA).await?;
    agent.wait_status(LIMIT, |s| s["link"] == "online").await?;
    wait_agent_media(&agent, "connected", |v| {
        v["session"]["phase"] == "connected"
    })
    .await?;
    let kiosk_browser = Browser::launch(&[]).await?;
    let kiosk = kiosk_browser.open(&agent.url("/kiosk")).await?;
    kiosk
        .wait_for(
            "window.kioskMedia && window.kioskMedia.stats().connection === 'connected'",
            LIMIT,
        )
        .await?;
    let clerk_browser = Browser::launch(&[]).await?;
    let clerk = clerk_browser.open(&relay.https_url("/healthz")).await?;
    clerk.add_init_script(SPY).await?;
    clerk.goto(&relay.https_url("/")).await?;
    sign_in(&clerk, &data).await?;
    take_ticket(&agent).await?;
    clerk.click("#btn-next").await?;
    let read = || clerk_stats(&clerk);
    grows(
        read,
        &["inbound", "0", "framesDecoded"],
        10.0,
        "kiosk camera before the change",
    )
    .await?;
    let read = || kiosk_page_stats(&kiosk);
    grows(
        read,
        &["clerk", "framesDecoded"],
        10.0,
        "clerk video in the kiosk page before the change",
    )
    .await?;

    // The network changes under the kiosk: its connection's flows are stranded for good.
    let before = agent_media(&agent).await?;
    let stranded = path.cut(AGENT_IP);
    if stranded == 0 {
        bail!("the agent's media did not go through the path: {before}");
    }
    let after = wait_agent_media(&agent, "reconnected over a new path", |v| {
        v["session"]["phase"] == "connected"
            && v["session"]["sending"] == true
            && num(v, &["session", "counters", "new_connections"])
                > num(&before, &["session", "counters", "new_connections"])
    })
    .await?;
    if path.dropped() == 0 || path.flows_from(AGENT_IP).len() <= stranded {
        bail!(
            "the new connection did not take a new path: {} flows, {stranded} stranded, {} dropped",
            path.flows_from(AGENT_IP).len(),
            path.dropped()
        );
    }
    eprintln!(
        "network change: {stranded} flows stranded, {} datagrams dropped, {} flows from the agent; session {}",
        path.dropped(),
        path.flows_from(AGENT_IP).len(),
        after["session"]
    );

    // The call goes on: the clerk sees the kiosk, the kiosk page shows the clerk over the
    // same screen connection, and the agent plays the clerk's voice.
    let read = || clerk_stats(&clerk);
    grows(
        read,
        &["inbound", "0", "framesDecoded"],
        10.0,
        "kiosk camera after the change",
    )
    .await?;
    grows(
        read,
        &["inbound", "2", "energy"],
        0.0001,
        "kiosk audio at the clerk after the change",
    )
    .await?;
    let read = || kiosk_page_stats(&kiosk);
    grows(
        read,
        &["clerk", "framesDecoded"],
        10.0,
        "clerk video in the kiosk page after the change",
    )
    .await?;
    let read = || agent_media(&agent);
    grows(
        read,
        &["link", "clerk_audio", "audible_buffers"],
        1.0,
        "clerk audio played after the change",
    )
    .await?;
    if num(&after, &["screen", "counters", "connections"]) != 1.0 {
        bail!("the kiosk page needed a new connection: {after}");
    }
    clerk
        .wait_for(
            "document.getElementById('media-area').dataset.serving === 'yes'",
            LIMIT,
        )
        .await?;

    clerk_browser.close().await;
    kiosk_browser.close().await;
    agent.kill().await?;
    relay.kill().await?;
    Ok(())
}
