// 预约 at the kiosk: check-in with a booking (QR on the scanner, or the last four digits of
// the mobile number and the booking code on a keypad) and booking a time (category → time →
// mobile number → SMS code → booking code shown large). kiosk.js asks `screen()` which of
// these screens to show, passes clicks to `click()` and calls `render()`.
//
// The name is not asked at the kiosk: typing Chinese characters on a touch screen without an
// input method is beyond many elderly residents, and the mobile number with its SMS code is
// what identifies the booking. The public booking page asks for the name.

import { request } from './common.js';

export function createAppointments({ $, t, set, lang, view, render }) {
  const a = {
    mode: null,        // 'checkin' | 'book' | 'booked' | null
    field: 'tail',     // the check-in field the keypad types into
    tail: '',
    code: '',
    busy: false,
    scanning: false,   // a scan request is waiting at the agent
    step: 'category',  // booking: category → slot → phone → code
    category: null,
    slots: null,
    slot: null,
    phone: '',
    sms: '',
    booking: null,
    lateTicket: null,  // the ticket id of a late check-in (told on the waiting screen)
  };

  const pad = (key) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'btn key';
    b.dataset.key = key;
    b.textContent = key === 'del' ? t('appt.key.del') : key === 'clear' ? t('appt.key.clear') : key;
    return b;
  };
  // Digits for numbers; the booking code's own alphabet (no 0/O, 1/I) for the code field.
  const DIGITS = ['1', '2', '3', '4', '5', '6', '7', '8', '9', 'clear', '0', 'del'];
  const CODE_KEYS = [...'23456789ABCDEFGHJKLMNPQRSTUVWXYZ', 'clear', 'del'];
  function buildPads() {
    document.querySelectorAll('.keypad').forEach((el) => {
      const letters = a.mode === 'checkin' && a.field === 'code';
      const key = lang() + (letters ? 'L' : 'D');
      if (el.dataset.lang === key) return;
      el.dataset.lang = key;
      el.classList.toggle('keypad-letters', letters);
      el.replaceChildren(...(letters ? CODE_KEYS : DIGITS).map(pad));
    });
  }

  function reset() {
    Object.assign(a, {
      mode: null, field: 'tail', tail: '', code: '', busy: false, step: 'category',
      category: null, slots: null, slot: null, phone: '', sms: '', booking: null,
    });
    set('checkin-status', '');
    set('book-status', '');
  }

  // "12月8日 周二 09:00-09:30" ("Tue 8/12 09:00-09:30"). The date is put together from its
  // parts: Chromium's zh-CN short form is "12/8周二", which residents misread.
  function slotText(s) {
    const locale = lang() === 'zh' ? 'zh-CN' : 'en-GB';
    const f = (ms, opts) => new Intl.DateTimeFormat(locale,
      { timeZone: 'Asia/Shanghai', ...opts }).format(new Date(ms));
    const p = Object.fromEntries(new Intl.DateTimeFormat(locale,
      { timeZone: 'Asia/Shanghai', month: 'numeric', day: 'numeric', weekday: 'short' })
      .formatToParts(new Date(s.start_ms)).map((x) => [x.type, x.value]));
    const day = lang() === 'zh' ? `${p.month}月${p.day}日 ${p.weekday}` : `${p.weekday} ${p.day}/${p.month}`;
    const hm = { hour: '2-digit', minute: '2-digit', hour12: false };
    return `${day} ${f(s.start_ms, hm)}-${f(s.end_ms, hm)}`;
  }

  // --- check-in ------------------------------------------------------------------------------

  // While the check-in screen is shown, one scan request waits at the agent (it answers 204
  // after a while with nothing scanned; then another is sent).
  async function scanLoop() {
    if (a.scanning) return;
    a.scanning = true;
    while (a.mode === 'checkin') {
      const r = await request('/kiosk/api/check-in/scan', { method: 'POST', timeoutMs: 60000 });
      if (a.mode !== 'checkin') break;
      if (r.status === 204) continue;
      if (r.ok) { checkedIn(r.data); break; }
      set('checkin-status', (r.data && r.data.message) || t('appt.error'));
      if (r.status === 503 || r.status === 0) break; // no scanner: the keypad remains
      if (r.status === 409 && r.data && r.data.error === 'scanner_busy') break;
    }
    a.scanning = false;
  }

  function checkedIn(answer) {
    const ticket = answer && answer.ticket;
    a.lateTicket = answer && answer.arrival === 'late' && ticket ? ticket.ticket_id : null;
    reset();
    render();
  }

  async function submitCheckIn() {
    if (a.busy) return;
    if (a.tail.length !== 4) { set('checkin-status', t('appt.tail')); a.field = 'tail'; render(); return; }
    if (a.code.length < 4) { set('checkin-status', t('appt.code')); a.field = 'code'; render(); return; }
    a.busy = true;
    set('checkin-status', t('appt.checking'));
    render();
    const r = await request('/kiosk/api/check-in', { body: { phone_tail: a.tail, code: a.code }, timeoutMs: 60000 });
    a.busy = false;
    if (r.ok) { checkedIn(r.data); return; }
    set('checkin-status', (r.data && r.data.message) || t('appt.error'));
    render();
  }

  // --- booking -------------------------------------------------------------------------------

  async function chooseCategory(id) {
    a.category = id;
    a.busy = true;
    set('book-status', '');
    render();
    const r = await request(`/kiosk/api/slots/${encodeURIComponent(id)}`, { timeoutMs: 60000 });
    a.busy = false;
    if (r.ok) {
      a.slots = r.data.slots || [];
      a.step = 'slot';
      set('book-status', a.slots.length === 0 ? t('appt.book.slot.none') : '');
    } else {
      set('book-status', (r.data && r.data.message) || t('appt.error'));
    }
    render();
  }

  async function sendSms() {
    if (a.busy) return;
    a.busy = true;
    set('book-status', '');
    render();
    const r = await request('/kiosk/api/verification', { body: { phone: a.phone }, timeoutMs: 60000 });
    a.busy = false;
    if (r.ok) { a.step = 'code'; a.sms = ''; } else set('book-status', (r.data && r.data.message) || t('appt.error'));
    render();
  }

  async function book() {
    if (a.busy) return;
    a.busy = true;
    set('book-status', t('appt.booking'));
    render();
    const body = {
      category_id: a.category, slot_start_ms: a.slot.start_ms, phone: a.phone, verification_code: a.sms, name: '',
    };
    const r = await request('/kiosk/api/booking', { body, timeoutMs: 60000 });
    a.busy = false;
    if (r.ok) {
      a.booking = r.data.booking;
      a.mode = 'booked';
      set('book-status', '');
    } else {
      set('book-status', (r.data && r.data.message) || t('appt.error'));
    }
    render();
  }

  function stepBack() {
    set('book-status', '');
    const back = { category: null, slot: 'category', phone: 'slot', code: 'phone' }[a.step];
    if (back === null) { reset(); render(); return; }
    a.step = back;
    render();
  }

  // --- what kiosk.js calls -----------------------------------------------------------------

  function screen() {
    return a.mode;
  }

  function renderCheckIn() {
    set('checkin-tail', a.tail.padEnd(4, '·'));
    set('checkin-code', a.code || '—');
    $('checkin-field-tail').setAttribute('aria-pressed', String(a.field === 'tail'));
    $('checkin-field-code').setAttribute('aria-pressed', String(a.field === 'code'));
    $('btn-checkin-submit').disabled = a.busy;
  }

  function renderBook() {
    const v = view();
    const titles = { category: 'appt.book.category', slot: 'appt.book.slot', phone: 'appt.book.phone', code: 'appt.book.code' };
    set('book-title', t(titles[a.step]));
    const list = $('book-choices');
    const entry = a.step === 'phone' || a.step === 'code';
    list.hidden = entry;
    $('book-entry').hidden = !entry;
    let items = [];
    if (a.step === 'category') {
      items = ((v && v.categories) || []).map((c) => ({ key: `c:${c.id}`, text: c.name }));
    } else if (a.step === 'slot') {
      items = (a.slots || []).map((s, i) => ({
        key: `s:${i}`, text: slotText(s), sub: `${t('appt.book.slot.free')} ${s.free}`, disabled: s.free === 0,
      }));
    }
    const key = items.map((i) => `${i.key}${i.text}${i.sub || ''}`).join('|') + a.step + lang();
    if (!entry && list.dataset.key !== key) {
      list.dataset.key = key;
      list.replaceChildren(...items.map((i) => {
        const b = document.createElement('button');
        b.type = 'button';
        b.className = 'btn btn-choice';
        b.dataset.appt = i.key;
        b.disabled = !!i.disabled;
        const name = document.createElement('span');
        name.className = 'choice-name';
        name.textContent = i.text;
        b.append(name);
        if (i.sub) {
          const sub = document.createElement('span');
          sub.className = 'choice-sub';
          sub.textContent = i.sub;
          b.append(sub);
        }
        return b;
      }));
    }
    list.querySelectorAll('button').forEach((b) => { if (a.busy) b.disabled = true; });
    const next = $('btn-book-next');
    next.hidden = !entry;
    if (a.step === 'phone') {
      set('book-entry-label', t('appt.book.phone.label'));
      set('book-entry-value', a.phone || '—');
      set('btn-book-next', t('appt.book.sms'));
      next.disabled = a.busy || a.phone.length !== 11;
    } else if (a.step === 'code') {
      set('book-entry-label', t('appt.book.code.label'));
      set('book-entry-value', a.sms || '—');
      set('btn-book-next', t('appt.book.confirm'));
      next.disabled = a.busy || a.sms.length < 4;
    }
  }

  function renderBooked() {
    const b = a.booking;
    set('booked-code', b.booking_code);
    set('booked-slot', slotText(b.slot));
    set('booked-category', b.category_name);
    const img = $('booked-qr');
    const src = typeof b.qr_image === 'string' && b.qr_image.startsWith('data:image/') ? b.qr_image : '';
    img.hidden = !src;
    if (src && img.getAttribute('src') !== src) img.setAttribute('src', src);
  }

  // The ticket's appointment and a late check-in, on the waiting and called screens.
  function renderTicket(current) {
    const v = view();
    const ticket = v && v.ticket;
    const slot = ticket && ticket.appointment;
    const badge = slot ? `${t('appt.badge')} ${slotText(slot)}` : '';
    for (const id of ['waiting-appt', 'called-appt']) {
      $(id).hidden = !slot;
      set(id, badge);
    }
    $('waiting-late').hidden = !(current === 'waiting' && ticket && ticket.ticket_id === a.lateTicket);
  }

  // No window open: the next opening time, and booking on offer.
  function renderIdle(unstaffed) {
    const v = view();
    const nexts = unstaffed && Array.isArray(v && v.staffing)
      ? v.staffing.map((s) => s.next_opening_ms).filter((ms) => typeof ms === 'number') : [];
    const next = nexts.length ? Math.min(...nexts) : null;
    $('idle-next-opening').hidden = next === null;
    if (next !== null) set('idle-next-opening', `${t('appt.next')}：${slotText({ start_ms: next, end_ms: next }).replace(/-.*$/, '')}`);
  }

  function renderAll(current) {
    buildPads();
    if (current === 'checkin') renderCheckIn();
    if (current === 'book') renderBook();
    if (current === 'booked') renderBooked();
    renderTicket(current);
  }

  function type(key) {
    const edit = (s, max) => (key === 'del' ? s.slice(0, -1) : key === 'clear' ? '' : (s + key).slice(0, max));
    if (a.mode === 'checkin') {
      if (a.field === 'tail') {
        a.tail = edit(a.tail, 4);
        if (a.tail.length === 4 && key !== 'del' && key !== 'clear') a.field = 'code';
      } else {
        a.code = edit(a.code, 8);
      }
    } else if (a.mode === 'book' && a.step === 'phone') {
      a.phone = edit(a.phone, 11);
    } else if (a.mode === 'book' && a.step === 'code') {
      a.sms = edit(a.sms, 8);
    }
    render();
  }

  // True when the click was ours.
  function click(target) {
    if (target.id === 'btn-checkin') { reset(); a.mode = 'checkin'; render(); scanLoop(); return true; }
    if (target.id === 'btn-book') { reset(); a.mode = 'book'; render(); return true; }
    if (target.id === 'btn-appt-back' || target.id === 'btn-booked-done') { reset(); render(); return true; }
    if (target.classList.contains('btn-appt-step-back')) { stepBack(); return true; }
    if (target.dataset.field) { a.field = target.dataset.field; render(); return true; }
    if (target.dataset.key) { type(target.dataset.key); return true; }
    if (target.id === 'btn-checkin-submit') { submitCheckIn(); return true; }
    if (target.id === 'btn-book-next') { if (a.step === 'phone') sendSms(); else book(); return true; }
    const choice = target.dataset.appt;
    if (choice && choice.startsWith('c:')) { chooseCategory(choice.slice(2)); return true; }
    if (choice && choice.startsWith('s:')) {
      a.slot = a.slots[Number(choice.slice(2))];
      a.step = 'phone';
      render();
      return true;
    }
    return false;
  }

  return { screen, render: renderAll, renderIdle, click, reset, busy: () => a.busy || a.mode !== null };
}
