// The resident's kiosk screen. One screen at a time, decided from the agent's live view
// (server-sent events from /kiosk/events) plus a little local state: the category choice,
// the thank-you pause, the dialogs. Everything from the relay is inserted as text.
// A module (deferred): it runs after i18n.js and media.js, whose globals it reads.

import { fetchJson, fmtClock } from './common.js';
import { createAppointments } from './appointments.js';

(() => {
  const TEXT = window.KIOSK_TEXT;
  const $ = (id) => document.getElementById(id);
  const SCREENS = ['connecting', 'idle', 'categories', 'waiting', 'called', 'session',
    'evaluation', 'thanks', 'ended', 'closed', 'offline', 'checkin', 'book', 'booked'];

  let lang = 'zh';
  let setup = null;           // from /kiosk/api/setup
  let view = null;            // the latest view event
  let viewAt = 0;             // performance.now() when it arrived
  let current = null;         // the screen shown
  const local = {
    choosing: false,          // the category screen is open
    taking: false,            // a ticket request is under way
    thanksUntil: 0,           // performance.now() until which the thank-you screen stays
    ended: null,              // {kind, until} after a ticket ended without service
    lastTouch: performance.now(),
    presenceUntil: 0,         // the presence question's deadline (0: not asked)
    level: null,              // the bad level chosen, while reasons are picked
    reasons: new Set(),
    saving: false,
    lastTicket: null,         // the ticket seen in the previous view
    largeText: false,         // 大字 (1.5×) and 高对比: for this resident's ticket only
    contrast: false,
    volume: 0.8,              // voice prompts, 0.2 to 1
    typedDismissed: 0,        // the newest typed message the resident put away (its id)
  };

  // Large text and high contrast are classes on <html>: every size is in rem, so one root
  // size scales every screen.
  function applyDisplay() {
    document.documentElement.classList.toggle('text-large', local.largeText);
    document.documentElement.classList.toggle('contrast', local.contrast);
    $('text-toggle').setAttribute('aria-pressed', String(local.largeText));
    $('contrast-toggle').setAttribute('aria-pressed', String(local.contrast));
    set('volume-level', `${t('a11y.volume')} ${Math.round(local.volume * 5)}`);
    if (playing) playing.volume = local.volume;
    sendSpeakerLevel();
  }

  // The same five steps set the clerk's voice, which the agent plays (not this page). Sent
  // when the step changes; a failure is tried again on the next change or reset.
  let speakerLevel = null;
  function sendSpeakerLevel() {
    const level = Math.round(local.volume * 5);
    if (level === speakerLevel) return;
    speakerLevel = level;
    fetchJson('/api/media/volume', { method: 'PUT', body: { level }, timeoutMs: 5000 })
      .catch(() => { speakerLevel = null; });
  }

  function resetDisplay() {
    local.largeText = false;
    local.contrast = false;
    local.volume = 0.8;
    applyDisplay();
  }

  const t = (key) => (TEXT[lang] && TEXT[lang][key] !== undefined ? TEXT[lang][key] : TEXT.zh[key]);

  // --- words and sound ---------------------------------------------------------------------

  function applyLanguage() {
    document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
    document.querySelectorAll('[data-i18n]').forEach((el) => {
      el.textContent = t(el.dataset.i18n);
    });
    document.querySelectorAll('[data-i18n-label]').forEach((el) => {
      el.setAttribute('aria-label', t(el.dataset.i18nLabel));
    });
    applyDisplay();
    renderReasons();
    render();
  }

  let playing = null;
  function speak(name) {
    try {
      if (playing) playing.pause();
      playing = new Audio(`/kiosk/audio/${name}.${lang}.ogg`);
      playing.volume = local.volume;
      playing.play().catch(() => {});
    } catch (_) { /* no sound is no reason to stop */ }
  }

  // --- formatting ------------------------------------------------------------------------

  function hoursText(point) {
    if (!point) return '';
    const h = point.hours;
    if (!h || !Array.isArray(h.weekly) || h.weekly.length === 0) return point.service_hours || '';
    const day = (d) => t('weekday')[d] || '';
    return h.weekly.map((w) => {
      const days = [...new Set(w.weekdays)].sort((a, b) => a - b);
      const contiguous = days.every((d, i) => i === 0 || d === days[i - 1] + 1);
      let dayText;
      if (days.length === 7) dayText = t('hours.everyday');
      else if (contiguous && days.length > 2) dayText = `${day(days[0])}${t('hours.to')}${day(days[days.length - 1])}`;
      else dayText = days.map(day).join(lang === 'zh' ? '、' : ', ');
      const periods = w.periods.map((p) => `${p.open.replace(/^0/, '')}-${p.close.replace(/^0/, '')}`).join(lang === 'zh' ? '、' : ', ');
      return `${dayText} ${periods}`;
    }).join(lang === 'zh' ? '；' : '; ');
  }

  function nextOpeningText(next) {
    if (!next) return '';
    const [date, weekday, time] = next;
    const [, m, d] = date.split('-').map(Number);
    const wd = t('weekday')[weekday] || '';
    return lang === 'zh' ? `${m}月${d}日 ${wd} ${time}` : `${wd} ${d}/${m} ${time}`;
  }

  // "10:30", Shanghai time, for an expected return.
  const clock = (ms) => fmtClock(ms).slice(0, 5);

  // The pause that ends first among categories with no open window, or null.
  function earliestPause(list) {
    return list.map((s) => s.paused).filter(Boolean)
      .reduce((a, p) => (!a || p.until_ms < a.until_ms ? p : a), null);
  }

  function backText(pause) {
    if (!pause) return '';
    return pause.until_ms <= view.now_ms ? t('staff.back.overdue') : `${t('staff.back')} ${clock(pause.until_ms)}`;
  }

  // The categories a window could serve now; all of them while the relay has not said.
  function offeredCategories() {
    const cats = (view && view.categories) || [];
    if (!view || !Array.isArray(view.staffing)) return cats;
    const open = new Set(view.staffing.filter((s) => s.open > 0).map((s) => s.category_id));
    return cats.filter((c) => open.has(c.id));
  }

  const set = (id, text) => { const el = $(id); if (el.textContent !== text) el.textContent = text; };

  // 预约签到 / 预约办理 (appointments.js).
  const appt = createAppointments({ $, t, set, lang: () => lang, view: () => view, render: () => render() });

  // --- which screen --------------------------------------------------------------------------

  const LIVE = ['waiting', 'called', 'serving', 'parked'];

  function decide(now) {
    if (local.thanksUntil > now) return 'thanks';
    if (!view) return 'connecting';
    if (view.evaluation) return 'evaluation';
    if (view.link !== 'online') {
      return view.link === 'connecting' && !view.extension_point ? 'connecting' : 'offline';
    }
    const ticket = view.ticket;
    if (ticket && LIVE.includes(ticket.state)) {
      if (ticket.state === 'called') return 'called';
      if (ticket.state === 'serving') return 'session';
      return 'waiting';
    }
    if (local.ended && local.ended.until > now) return 'ended';
    if (view.hours && view.hours.open === false) return 'closed';
    if (appt.screen()) return appt.screen();
    if (local.choosing && offeredCategories().length > 0) return 'categories';
    return 'idle';
  }

  function show(name) {
    if (name === current) return;
    const was = current;
    current = name;
    SCREENS.forEach((s) => { $(`screen-${s}`).hidden = s !== name; });
    document.body.dataset.screen = name;
    if (was === 'session') window.kioskMedia.sessionEnded();
    if (name === 'session') window.kioskMedia.sessionStarted(view && view.ticket);
    if (name !== 'waiting') closeDialog('dialog-cancel');
    if (name !== 'waiting') { local.presenceUntil = 0; closeDialog('dialog-presence'); }
    if (name === 'idle' && was && was !== 'connecting' && was !== 'categories') {
      // The next resident starts in Chinese.
      if (lang !== 'zh') { lang = 'zh'; applyLanguage(); }
      resetDisplay();
    }
    if (name === 'evaluation') { local.level = null; local.reasons.clear(); local.saving = false; set('evaluation-status', ''); }
    const sounds = { waiting: 'taken', called: 'called', evaluation: 'evaluate', thanks: 'thanks' };
    if (sounds[name] && !(name === 'waiting' && was === null)) speak(sounds[name]);
    local.lastTouch = performance.now();
  }

  // --- rendering ---------------------------------------------------------------------------

  function render() {
    const now = performance.now();
    show(decide(now));
    const point = view && view.extension_point;
    set('point-name', point ? point.name : '');
    set('centre-name', view && view.centre ? view.centre.name : '');
    $('lang-toggle').textContent = t('lang.toggle');
    set('idle-hours', hoursText(point));
    if (current === 'idle') renderIdle(point);
    if (current === 'categories') renderCategories();
    if (current === 'waiting') renderWaiting();
    if (current === 'called') {
      set('called-number', view.ticket.number);
      set('called-window', view.ticket.window_name || '');
      renderClerk($('called-clerk'), view.ticket.serving_clerk);
    }
    if (current === 'session') renderSession();
    if (current === 'evaluation') renderEvaluation();
    if (current === 'closed') {
      set('closed-next', nextOpeningText(view.hours.next_opening));
      set('closed-hours', hoursText(point));
    }
    if (current === 'offline') set('offline-phone', point && point.phone ? point.phone : '');
    if (current === 'ended' && local.ended) set('ended-text', t(`ended.${local.ended.kind}`));
    appt.render(current);
    renderPrompt();
  }

  // No open window for any category: no button that leads nowhere, but the plain reason and,
  // when the windows are only paused, when they are expected back.
  function renderIdle(point) {
    const unstaffed = Array.isArray(view && view.staffing) && view.link === 'online'
      && offeredCategories().length === 0 && ((view.categories || []).length > 0);
    $('btn-start').hidden = unstaffed;
    $('idle-unstaffed').hidden = !unstaffed;
    appt.renderIdle(unstaffed);
    if (!unstaffed) return;
    const pause = earliestPause(view.staffing);
    set('idle-unstaffed-title', pause ? t('staff.paused.title') : t('staff.none.title'));
    set('idle-unstaffed-back', backText(pause));
    set('idle-unstaffed-phone', point && point.phone ? point.phone : '');
  }

  function renderCategories() {
    const list = $('category-list');
    const cats = offeredCategories();
    const key = cats.map((c) => c.id).join('|') + lang;
    if (list.dataset.key !== key) {
      list.dataset.key = key;
      list.replaceChildren(...cats.map((c) => {
        const b = document.createElement('button');
        b.type = 'button';
        b.className = 'btn btn-choice';
        b.dataset.category = c.id;
        const name = document.createElement('span');
        name.className = 'choice-name';
        name.textContent = c.name;
        b.append(name);
        return b;
      }));
    }
    if (cats.length === 0) set('categories-status', t('categories.none'));
    list.querySelectorAll('button').forEach((b) => { b.disabled = local.taking; });
  }

  function renderWaiting() {
    const ticket = view.ticket;
    set('waiting-number', ticket.number);
    set('waiting-category', ticket.category_name);
    let ahead = '';
    let eta = '';
    if (ticket.state === 'parked') {
      ahead = t('waiting.parked');
    } else {
      if (ticket.ahead === 0) ahead = t('waiting.next');
      else if (typeof ticket.ahead === 'number') ahead = `${t('waiting.ahead')} ${ticket.ahead} ${t('waiting.ahead.unit')}`.trim();
      if (typeof ticket.eta_seconds !== 'number') eta = t('waiting.eta.unknown');
      else if (ticket.eta_seconds < 60) eta = t('waiting.eta.soon');
      else eta = `${t('waiting.eta')} ${Math.round(ticket.eta_seconds / 60)} ${t('waiting.eta.unit')}`;
    }
    set('waiting-ahead', ahead);
    set('waiting-eta', eta);
    // The windows that could serve this ticket are paused or closed: say so, not "please wait".
    const a = ticket.state === 'waiting' ? ticket.availability : null;
    const stopped = !!a && a.open === 0;
    $('waiting-pause').hidden = !stopped;
    if (stopped) {
      set('waiting-pause-title', a.paused ? t('staff.paused.title') : t('waiting.closed.title'));
      set('waiting-pause-body', a.paused ? backText(a.paused) : t('waiting.closed.body'));
      if (!a.paused) set('waiting-eta', '');
    }
  }

  // Who serves the resident: name, post, staff number and photo (岗位、照片、工号).
  function renderClerk(card, clerk) {
    card.hidden = !clerk;
    if (!clerk) return;
    const put = (cls, text) => { const el = card.querySelector(cls); if (el.textContent !== text) el.textContent = text; };
    put('.clerk-name', clerk.name || '');
    put('.clerk-post', clerk.post || '');
    put('.clerk-number', clerk.staff_number ? `${t('clerk.number')} ${clerk.staff_number}` : '');
    const img = card.querySelector('.clerk-photo');
    const src = typeof clerk.photo === 'string' && clerk.photo.startsWith('data:image/') ? clerk.photo : '';
    img.hidden = !src;
    img.alt = `${t('clerk.photo')} ${clerk.name || ''}`.trim();
    if (src && img.getAttribute('src') !== src) img.setAttribute('src', src);
    if (!src) img.removeAttribute('src');
  }

  // What the clerk typed (a word not caught, an address): the newest large until the next
  // one or until dismissed, the few before it below as a short history. Text only.
  function renderTyped() {
    const list = (view && Array.isArray(view.typed_messages)) ? view.typed_messages : [];
    $('typed-panel').hidden = list.length === 0;
    if (list.length === 0) return;
    const newest = list[list.length - 1];
    const showNewest = newest.message_id !== local.typedDismissed;
    $('typed-latest').hidden = !showNewest;
    set('typed-current', showNewest ? newest.text : '');
    const earlier = (showNewest ? list.slice(0, -1) : list.slice()).reverse();
    $('typed-earlier').hidden = earlier.length === 0;
    const history = $('typed-history');
    const key = earlier.map((m) => m.message_id).join('|');
    if (history.dataset.key !== key) {
      history.dataset.key = key;
      history.replaceChildren(...earlier.map((m) => {
        const li = document.createElement('li');
        li.textContent = m.text;
        return li;
      }));
    }
  }

  function renderSession() {
    renderTyped();
    set('session-window', view.ticket.window_name || '');
    renderClerk($('session-clerk'), view.ticket.serving_clerk);
    const list = $('device-activity');
    const acts = (view.devices && view.devices.activities) || [];
    const key = JSON.stringify(acts) + lang;
    if (list.dataset.key === key) return;
    list.dataset.key = key;
    list.replaceChildren(...acts.map((a) => {
      const li = document.createElement('li');
      const en = TEXT.activityEn[a.device];
      li.textContent = lang === 'en' && en ? en : a.text;
      return li;
    }));
  }

  function renderEvaluation() {
    const e = view.evaluation;
    const service = [e.category_name, e.window_name].filter(Boolean).join(' · ');
    set('evaluation-service', `${e.number} ${service}`.trim());
    const elapsed = performance.now() - viewAt;
    const left = Math.max(0, Math.ceil((e.deadline_ms - view.now_ms - elapsed) / 1000));
    set('evaluation-seconds', String(left));
    const bad = local.level !== null;
    $('level-list').hidden = bad;
    $('reason-panel').hidden = !bad;
    $('btn-reasons-submit').disabled = local.reasons.size === 0 || local.saving;
    document.querySelectorAll('#level-list button').forEach((b) => { b.disabled = local.saving; });
    document.querySelectorAll('#reason-list button').forEach((b) => {
      b.setAttribute('aria-pressed', local.reasons.has(b.dataset.reason) ? 'true' : 'false');
    });
  }

  function renderReasons() {
    if (!setup) return;
    const list = $('reason-list');
    list.replaceChildren(...setup.reasons.map((r) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'btn btn-choice btn-toggle';
      b.dataset.reason = r.id;
      b.setAttribute('aria-pressed', 'false');
      b.textContent = lang === 'zh' ? r.zh : r.en;
      return b;
    }));
  }

  function renderPrompt() {
    const prompt = view && view.devices && view.devices.prompt;
    const dialog = $('dialog-prompt');
    if (!prompt || current !== 'session') {
      dialog.hidden = true;
      delete dialog.dataset.id;
      return;
    }
    dialog.hidden = false;
    dialog.dataset.id = String(prompt.id);
    set('prompt-text', prompt.text);
    const confirm = prompt.kind === 'confirm';
    $('btn-prompt-ack').hidden = confirm;
    $('btn-prompt-confirm').hidden = !confirm;
    $('btn-prompt-cancel').hidden = !confirm;
  }

  function closeDialog(id) { $(id).hidden = true; }

  // --- following the agent ---------------------------------------------------------------------

  function onView(next) {
    const before = local.lastTicket;
    const ticket = next.ticket;
    // A ticket that ended without service (no-show, cancelled by the clerk) says so briefly.
    if (before && LIVE.includes(before.state) && ticket && ticket.ticket_id === before.ticket_id
        && (ticket.state === 'no_show' || (ticket.state === 'cancelled' && !local.cancelling))) {
      local.ended = { kind: ticket.state, until: performance.now() + setupMs('thank_you_secs') };
      setTimeout(render, setupMs('thank_you_secs') + 50);
    }
    if (ticket && LIVE.includes(ticket.state)) { local.choosing = false; local.taking = false; }
    local.lastTicket = ticket;
    view = next;
    viewAt = performance.now();
    render();
  }

  function connect() {
    const source = new EventSource('/kiosk/events');
    source.addEventListener('view', (ev) => {
      try { onView(JSON.parse(ev.data)); } catch (_) { /* a bad event is skipped */ }
    });
    source.onerror = () => {
      // The agent itself is unreachable: show the offline screen; EventSource reconnects.
      if (view) { view = { ...view, link: 'offline' }; render(); }
    };
  }

  const setupMs = (key) => (setup ? setup[key] : 60) * 1000;

  // --- actions -------------------------------------------------------------------------------

  // The agent answers within the link's own request timeout; this one only catches an agent
  // that hangs.
  function post(url, body, method = 'POST') {
    return fetchJson(url, { method, body: body ?? undefined, timeoutMs: 60000 });
  }

  async function takeTicket(categoryId) {
    if (local.taking) return;
    local.taking = true;
    set('categories-status', t('categories.taking'));
    render();
    try {
      await post('/api/ticket', { category_id: categoryId });
      set('categories-status', '');
    } catch (_) {
      local.taking = false;
      set('categories-status', t('error.take'));
      render();
    }
  }

  async function cancelTicket() {
    local.cancelling = true;
    closeDialog('dialog-cancel');
    closeDialog('dialog-presence');
    local.presenceUntil = 0;
    try { await post('/api/ticket', null, 'DELETE'); } catch (_) { /* the view tells */ }
    setTimeout(() => { local.cancelling = false; }, 2000);
  }

  async function rate(level, reasons) {
    if (local.saving || !view || !view.evaluation) return;
    local.saving = true;
    set('evaluation-status', t('evaluation.saving'));
    render();
    try {
      await post('/kiosk/api/evaluation', { ticket_id: view.evaluation.ticket_id, level, reasons });
      local.thanksUntil = performance.now() + setupMs('thank_you_secs');
      setTimeout(render, setupMs('thank_you_secs') + 50);
    } catch (_) {
      set('evaluation-status', t('evaluation.retry'));
    }
    local.saving = false;
    render();
  }

  async function answerPrompt(answer) {
    const id = Number($('dialog-prompt').dataset.id);
    $('dialog-prompt').hidden = true;
    try { await post('/api/prompt/answer', { prompt_id: id, answer }); } catch (_) { /* shown again */ }
  }

  document.addEventListener('click', (ev) => {
    local.lastTouch = performance.now();
    const target = ev.target.closest('button');
    if (!target) {
      if (current === 'idle') speak('welcome');
      if (current === 'closed') speak('closed');
      if (current === 'offline') speak('offline');
      return;
    }
    if (target.id === 'lang-toggle') { lang = lang === 'zh' ? 'en' : 'zh'; applyLanguage(); return; }
    if (target.id === 'text-toggle') { local.largeText = !local.largeText; applyDisplay(); return; }
    if (target.id === 'contrast-toggle') { local.contrast = !local.contrast; applyDisplay(); return; }
    if (target.id === 'volume-up' || target.id === 'volume-down') {
      const step = target.id === 'volume-up' ? 0.2 : -0.2;
      local.volume = Math.round(Math.min(1, Math.max(0.2, local.volume + step)) * 10) / 10;
      applyDisplay();
      speak('welcome');
      return;
    }
    if (appt.click(target)) return;
    if (target.id === 'btn-start') { local.choosing = true; local.taking = false; set('categories-status', ''); render(); return; }
    if (target.id === 'btn-categories-back') { local.choosing = false; render(); return; }
    if (target.dataset.category) { takeTicket(target.dataset.category); return; }
    if (target.id === 'btn-cancel') { $('dialog-cancel').hidden = false; return; }
    if (target.id === 'btn-cancel-no') { closeDialog('dialog-cancel'); return; }
    if (target.id === 'btn-cancel-yes') { cancelTicket(); return; }
    if (target.id === 'btn-presence-keep') { local.presenceUntil = 0; closeDialog('dialog-presence'); return; }
    if (target.dataset.level) {
      const level = setup && setup.levels.find((l) => l.id === target.dataset.level);
      if (level && level.bad) { local.level = level.id; local.reasons.clear(); render(); } else rate(target.dataset.level, []);
      return;
    }
    if (target.dataset.reason) {
      const r = target.dataset.reason;
      if (local.reasons.has(r)) local.reasons.delete(r); else local.reasons.add(r);
      render();
      return;
    }
    if (target.id === 'btn-reasons-back') { local.level = null; local.reasons.clear(); render(); return; }
    if (target.id === 'btn-reasons-submit') { rate(local.level, [...local.reasons]); return; }
    if (target.id === 'btn-typed-dismiss') {
      const list = (view && view.typed_messages) || [];
      if (list.length) local.typedDismissed = list[list.length - 1].message_id;
      render();
      return;
    }
    if (target.id === 'btn-prompt-ack') { answerPrompt('acknowledged'); return; }
    if (target.id === 'btn-prompt-confirm') { answerPrompt('confirmed'); return; }
    if (target.id === 'btn-prompt-cancel') { answerPrompt('cancelled'); }
  });

  // Once a second: countdowns, inactivity and the presence question.
  setInterval(() => {
    const now = performance.now();
    const quiet = now - local.lastTouch;
    if (current === 'categories' && !local.taking && quiet > setupMs('idle_return_secs')) {
      local.choosing = false;
    }
    if (['checkin', 'book', 'booked'].includes(current) && quiet > setupMs('idle_return_secs')) {
      appt.reset();
    }
    if (current === 'waiting') {
      if (!local.presenceUntil && quiet > setupMs('presence_check_secs')) {
        local.presenceUntil = now + setupMs('presence_grace_secs');
        $('dialog-presence').hidden = false;
        speak('still-there');
      }
      if (local.presenceUntil) {
        const left = Math.max(0, Math.ceil((local.presenceUntil - now) / 1000));
        set('presence-seconds', String(left));
        if (left === 0) cancelTicket();
      }
    }
    render();
  }, 1000);

  fetchJson('/kiosk/api/setup')
    .then((s) => { setup = s; applyLanguage(); })
    .catch(() => {});
  applyLanguage();
  connect();
})();
