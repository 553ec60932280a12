// Operating the served kiosk's devices (ID card reader, document camera, scanner, prompts).
// Filled in by the peripherals work.

export function init(_api) {}
export function onCurrentTicket(_ticket) {}
