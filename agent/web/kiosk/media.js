// The video of the kiosk screen: the clerk large in #clerk-video, the resident small in
// #self-view. The agent's media work owns this file; the page calls only these hooks.
//
//   window.kioskMedia.sessionStarted(ticket)  the screen shows the session (containers visible)
//   window.kioskMedia.sessionEnded()          the session screen is left
//
// Until video is wired in, the containers show their placeholder labels.
'use strict';

window.kioskMedia = {
  sessionStarted(/* ticket */) {},
  sessionEnded() {},
};
