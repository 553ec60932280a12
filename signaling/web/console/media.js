// Video and audio of the served kiosk (WebRTC to the relay's SFU). Filled in by the media work.

export function init(_api) {}
export function onCurrentTicket(_ticket) {}
