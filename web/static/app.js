// cloudcloud page script. The page works without it (every control is a
// form that posts and redirects back); this makes it live: the JSON API
// instead of page loads, Server-Sent Events from /api/events so every open
// phone shows the same within a second, and a colour wheel a thumb can use.
// No framework and no build step: it is served as written.
'use strict';

(() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

  // The service worker shows "cannot reach your cloudcloud" instead of the
  // browser's error page when the server is out of reach.
  if ('serviceWorker' in navigator) navigator.serviceWorker.register('/sw.js').catch(() => {});

  const boot = JSON.parse(($('#boot') || {}).textContent || 'null');
  if (!boot) return; // the login and error pages need nothing from here
  const csrf = ($('meta[name="csrf-token"]') || {}).content || '';

  // The server's words (weather names, lamp phases, device events) come
  // with the page, from the packages that own them.
  const WORDS = boot.words;
  const WEATHER_NAMES = WORDS.weather;
  const PHASE = WORDS.phase;
  const EVENT = WORDS.event;
  const WEATHER_ICONS = ['cloud', 'sunrise', 'sunset', 'sun', 'cloud', 'rain', 'storm', 'snow', 'mist', 'wind'];
  const STATUS = {
    ok: ['Live', 'good'], no_api_key: ['No API key', 'warn'], bad_api_key: ['Bad API key', 'bad'],
    unknown_place: ['Unknown place', 'bad'], rate_limited: ['Rate limited', 'warn'], error: ['Failing', 'bad'], '': ['Starting', 'warn'],
  };
  const SEND_EVERY_MS = 150; // the lamp follows a dragging finger a few times a second

  // The server's clock may differ from the phone's; "ago" texts use the server's.
  const clockSkew = boot.server_time ? Date.parse(boot.server_time) - Date.now() : 0;
  const serverNow = () => Date.now() + clockSkew;

  const app = {
    state: null,
    devices: new Map(),
    lamps: new Map(), // the lamp registry by id (API.md "Lamps"); empty on a server without one
    favorites: [],
    weather: boot.weather,
    logFilter: boot.log_filter || '',
    stale: false, // the stream is down: what the page shows may be old
    firmware: !!(boot.firmware && boot.firmware.current), // an image lamps can update to
  };

  // ---------- small helpers ----------

  const capitalize = (s) => (s ? s[0].toUpperCase() + s.slice(1) : s);
  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
  const hex2 = (n) => n.toString(16).padStart(2, '0');
  const rgbToHex = ({ r, g, b }) => '#' + hex2(r) + hex2(g) + hex2(b);
  const hexToRgb = (hex) => {
    const m = /^#?([0-9a-f]{6})$/i.exec(hex.trim());
    if (!m) return null;
    const n = parseInt(m[1], 16);
    return { r: n >> 16, g: (n >> 8) & 255, b: n & 255 };
  };

  // HSV with h in degrees, s and v in 0..1.
  function hsvToRgb(h, s, v) {
    const f = (n) => {
      const k = (n + h / 60) % 6;
      return Math.round(255 * (v - v * s * Math.max(0, Math.min(k, 4 - k, 1))));
    };
    return { r: f(5), g: f(3), b: f(1) };
  }
  function rgbToHsv({ r, g, b }) {
    r /= 255; g /= 255; b /= 255;
    const max = Math.max(r, g, b), min = Math.min(r, g, b), d = max - min;
    let h = 0;
    if (d) {
      if (max === r) h = 60 * (((g - b) / d) % 6);
      else if (max === g) h = 60 * ((b - r) / d + 2);
      else h = 60 * ((r - g) / d + 4);
    }
    return { h: (h + 360) % 360, s: max ? d / max : 0, v: max };
  }

  function humanDuration(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min';
    if (s < 86400) {
      const m = Math.floor((s % 3600) / 60);
      return Math.floor(s / 3600) + ' h' + (m ? ' ' + m + ' min' : '');
    }
    const h = Math.floor((s % 86400) / 3600);
    return Math.floor(s / 86400) + ' d' + (h ? ' ' + h + ' h' : '');
  }
  const ago = (iso) => {
    if (!iso || iso.startsWith('0001')) return 'never';
    const d = serverNow() - Date.parse(iso);
    return d < 2000 ? 'just now' : humanDuration(d) + ' ago';
  };
  const until = (iso) => {
    if (!iso || iso.startsWith('0001')) return '—';
    const d = Date.parse(iso) - serverNow();
    return d <= 1000 ? 'now' : 'in ' + humanDuration(Math.ceil(d / 1000) * 1000);
  };
  // Intensity as the protocol writes it: "7", "4.5", "4.37".
  const formatIntensity = (x) => String(Math.round(clamp(Number(x) || 0, 0, 10) * 100) / 100);
  // inRange brings an intensity into the range of a weather code
  // (PROTOCOL.md "Packets"): 1-9 for clear sky and codes 5-9, 0-10 for
  // sunrise, sunset and cloudy; the one slider serves every code.
  const inRange = (code, v) => ([1, 2, 4].includes(code) ? v : clamp(v, 1, 9));
  const clock = (iso) => new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });

  function setText(el, text) {
    if (el && el.textContent !== text) el.textContent = text;
  }
  const field = (root, name) => root.querySelector('[data-field="' + name + '"]');

  function toast(message, kind) {
    const box = $('#toasts');
    if (!box) return;
    const t = document.createElement('div');
    t.className = 'toast' + (kind === 'error' ? ' error' : '');
    t.textContent = message;
    box.append(t);
    while (box.children.length > 3) box.firstElementChild.remove();
    setTimeout(() => t.remove(), kind === 'error' ? 6000 : 2600);
  }

  // ---------- the API ----------

  class APIError extends Error {}

  // api calls the JSON API; a FormData body goes as multipart (uploads).
  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (method !== 'GET') headers['X-CSRF-Token'] = csrf;
    const form = body instanceof FormData;
    if (body !== undefined && !form) headers['Content-Type'] = 'application/json';
    let res;
    try {
      res = await fetch(path, { method, headers, body: body === undefined || form ? body : JSON.stringify(body), credentials: 'same-origin', cache: 'no-store' });
    } catch (e) {
      throw new APIError('The server cannot be reached. Check the connection.');
    }
    if (res.status === 401) {
      location.assign('/login?next=' + encodeURIComponent(location.pathname + location.search));
      throw new APIError('Signed out.');
    }
    const data = await res.json().catch(() => ({}));
    // "message" is the sentence for a person; "error" keeps the detail.
    if (!res.ok) throw new APIError(data.message || data.error || res.status + ' ' + res.statusText);
    return data;
  }

  // ---------- display state ----------

  // Changes go out one request at a time, merged while one is in flight, and
  // at most every SEND_EVERY_MS while dragging; the last value always goes.
  const sender = { pending: null, inflight: false, timer: 0, last: 0 };

  function changeState(change, throttle) {
    sender.pending = Object.assign(sender.pending || {}, change);
    pump(throttle);
  }
  function pump(throttle) {
    if (sender.inflight || sender.timer || !sender.pending) return;
    const wait = throttle ? sender.last + SEND_EVERY_MS - performance.now() : 0;
    if (wait > 0) {
      sender.timer = setTimeout(() => { sender.timer = 0; pump(false); }, wait);
      return;
    }
    const body = sender.pending;
    sender.pending = null;
    sender.inflight = true;
    sender.last = performance.now();
    api('PUT', '/api/state', body)
      .then((st) => applyState(st))
      .catch((e) => { toast(e.message, 'error'); if (app.state) applyState(app.state, true); })
      .finally(() => { sender.inflight = false; pump(true); });
  }
  const sending = () => sender.inflight || sender.timer || sender.pending;

  // The colour the controls show; it leads the server while a finger drags.
  const picker = { h: 0, s: 1, v: 1, active: false };

  function applyState(st, force) {
    if (!st) return;
    // Events and answers can cross; never step back to an older state.
    if (!force && app.state && st.updated_at && app.state.updated_at && Date.parse(st.updated_at) < Date.parse(app.state.updated_at)) return;
    app.state = st;
    const mode = st.mode;
    const ov = st.weather_override;
    const code = ov ? ov.code : st.weather.code;
    const intensity = formatIntensity(ov ? ov.intensity : st.weather.intensity);

    const lamp = $('#lamp');
    lamp.dataset.mode = mode;
    lamp.dataset.wx = String(code);
    lamp.dataset.pulse = String(st.pulse);
    $('.hero').dataset.mode = mode;
    $('.hero').dataset.wx = String(code);
    const wxUse = $('#lamp-wx-use');
    if (wxUse) wxUse.setAttribute('href', '#i-' + (WEATHER_ICONS[code] || 'cloud'));
    document.documentElement.style.setProperty('--lamp-glow', mode === 'weather' ? String(0.25 + 0.6 * (Number(intensity) / 10)) : '0.85');
    $$('.mode').forEach((b) => b.setAttribute('aria-pressed', String(b.value === mode)));

    let headline, detail;
    if (mode === 'manual') {
      headline = 'Manual colour';
      detail = st.color + (st.pulse ? ' · pulse ' + st.pulse : ' · steady');
    } else if (mode === 'weather') {
      headline = capitalize(WEATHER_NAMES[code] || 'weather');
      if (ov) detail = 'Preview · intensity ' + intensity + previewEnds(' · ends ');
      else if (st.weather.source === 'default') detail = 'Built-in clear sky · no live weather';
      else detail = 'Live weather · intensity ' + intensity;
    } else {
      headline = 'Off';
      detail = 'The lamps are dark';
    }
    setText(field(document, 'headline'), headline);
    setText(field(document, 'detail'), detail);
    setText(field(document, 'packet'), st.packet);

    // Weather preview chips and intensity.
    $$('.wx-chip').forEach((c) => c.setAttribute('aria-pressed', String(ov ? c.dataset.override === String(ov.code) : c.dataset.override === 'live')));
    // The slider keeps the value a person set while it maps to what the
    // lamps show (10 previews a storm as 9 and cloudy as 10).
    const inten = $('#intensity');
    if (inten && document.activeElement !== inten && inRange(code, Number(inten.value)) !== Number(intensity)) {
      inten.value = intensity;
      setText($('#intensity-out'), intensity);
    }
    // The intensity belongs to a preview; live weather brings its own.
    if (inten) inten.disabled = !ov;
    $('#intensity-hint').hidden = !!ov;
    renderPreviewNote();

    // The colour controls follow unless the person is using them.
    if (!picker.active && !sending()) showColour(st.color);
    const pulse = $('#pulse');
    if (pulse && document.activeElement !== pulse && !sending()) {
      pulse.value = String(st.pulse);
      setText($('#pulse-out'), st.pulse ? 'Pulse ' + st.pulse : 'Steady');
    }
    updateLampColour(st.color);
    markCurrentSwatch();
    updateSynced();
  }

  // previewEnds is "<prefix>in 52 s" while a preview has an end (the
  // state's preview_ends_at), else "".
  function previewEnds(prefix) {
    const ends = app.state && app.state.preview_ends_at;
    return ends ? prefix + until(ends) : '';
  }
  function renderPreviewNote() {
    const note = $('#preview-note');
    const ov = app.state && app.state.weather_override;
    note.hidden = !ov;
    if (ov) setText(note, previewEnds('') ? 'This preview ends by itself ' + previewEnds('') + '. Tap Live weather to end it now.' : 'Tap Live weather to end the preview.');
  }
  function tickPreview() {
    const st = app.state;
    if (!st || !st.weather_override) return;
    if (st.mode === 'weather') setText(field(document, 'detail'), 'Preview · intensity ' + formatIntensity(st.weather_override.intensity) + previewEnds(' · ends '));
    renderPreviewNote();
  }

  // The preview, swatch and page accent follow the lamp's colour.
  function updateLampColour(hex) {
    $$('.lamp-fill, .lamp-fill-now').forEach((el) => el.setAttribute('fill', hex));
    document.documentElement.style.setProperty('--lamp', hex);
    $$('input[data-bind="color"]').forEach((el) => { el.value = hex; });
  }

  function showColour(hex) {
    const rgb = hexToRgb(hex);
    if (!rgb) return;
    const hsv = rgbToHsv(rgb);
    // Black and greys have no hue: keep the knob where it was.
    if (hsv.v > 0 && hsv.s > 0) picker.h = hsv.h;
    if (hsv.v > 0) picker.s = hsv.s;
    picker.v = hsv.v;
    renderPicker(rgb);
  }

  // ---------- colour wheel ----------

  // The wheel itself is CSS (conic and radial gradients in app.css): no
  // pixel loop on the phone's main thread.
  const wheel = $('#wheel');
  const brightness = $('#brightness');

  function renderPicker(rgb) {
    rgb = rgb || hsvToRgb(picker.h, picker.s, picker.v);
    const hex = rgbToHex(rgb);
    const size = wheel.clientWidth || 300;
    const rad = (picker.h * Math.PI) / 180;
    const dist = picker.s * (size / 2);
    wheel.style.setProperty('--kx', size / 2 + Math.cos(rad) * dist + 'px');
    wheel.style.setProperty('--ky', size / 2 + Math.sin(rad) * dist + 'px');
    wheel.style.setProperty('--knob', rgbToHex(hsvToRgb(picker.h, picker.s, 1)));
    wheel.setAttribute('aria-valuetext', hex);
    brightness.style.setProperty('--hue-full', rgbToHex(hsvToRgb(picker.h, picker.s, 1)));
    if (document.activeElement !== brightness) brightness.value = String(Math.max(1, Math.round(picker.v * 100)));
    setText($('#brightness-out'), Math.round(picker.v * 100) + ' %');
    // A field keeps what a person is typing into it; otherwise it follows
    // the colour, even while it has the focus.
    const follow = (el, v) => {
      if (el.dataset.dirty === 'typing') return;
      delete el.dataset.dirty;
      el.value = v;
    };
    follow($('#hex'), hex);
    for (const [k, v] of [['r', rgb.r], ['g', rgb.g], ['b', rgb.b]]) follow($('#rgb-' + k), String(v));
  }

  // pickColour is a person choosing a colour: the page shows it at once and
  // the lamps follow, throttled while dragging.
  function pickColour(throttle) {
    // What was typed into the exact fields is dropped: the colour came
    // from elsewhere (and a phone's keyboard closes).
    $$('#exact input').forEach((el) => {
      if (!el.dataset.dirty) return;
      delete el.dataset.dirty;
      if (document.activeElement === el) el.blur();
    });
    const rgb = hsvToRgb(picker.h, picker.s, picker.v);
    const hex = rgbToHex(rgb);
    renderPicker(rgb);
    updateLampColour(hex);
    const lamp = $('#lamp');
    lamp.dataset.mode = 'manual';
    $('.hero').dataset.mode = 'manual';
    changeState({ mode: 'manual', color: hex }, throttle);
  }

  function wheelAt(ev) {
    const box = wheel.getBoundingClientRect();
    const r = box.width / 2;
    const dx = ev.clientX - box.left - r, dy = ev.clientY - box.top - r;
    picker.h = (Math.atan2(dy, dx) * 180 / Math.PI + 360) % 360;
    picker.s = clamp(Math.sqrt(dx * dx + dy * dy) / r, 0, 1);
    if (picker.v < 0.05) picker.v = 1; // choosing a hue on a black lamp means "show it"
  }

  // On a phone the wheel fills the screen's width, so a swipe that starts
  // on it must scroll the page, never recolour the lamps (touch-action:
  // pan-y in app.css). A touch changes the colour only when it is meant
  // to: a tap, a drag that starts on the knob, or a drag after a short
  // hold. Mouse and pen act at once.
  const HOLD_MS = 250, SLOP_PX = 10, KNOB_GRAB_PX = 28;
  const touch = { id: null, x: 0, y: 0, timer: 0 };
  function onKnob(ev) {
    const box = wheel.getBoundingClientRect();
    const rad = (picker.h * Math.PI) / 180, dist = picker.s * (box.width / 2);
    const kx = box.left + box.width / 2 + Math.cos(rad) * dist, ky = box.top + box.height / 2 + Math.sin(rad) * dist;
    return Math.hypot(ev.clientX - kx, ev.clientY - ky) <= KNOB_GRAB_PX;
  }
  function startDrag(ev) {
    picker.active = true;
    wheel.classList.add('dragging');
    wheelAt(ev);
    pickColour(true);
  }
  function forgetTouch() {
    clearTimeout(touch.timer);
    touch.id = null;
  }

  if (wheel) {
    wheel.addEventListener('pointerdown', (ev) => {
      if (ev.button !== 0) return;
      if (ev.pointerType !== 'touch' || onKnob(ev)) {
        if (ev.pointerType !== 'touch') ev.preventDefault();
        wheel.setPointerCapture(ev.pointerId);
        startDrag(ev);
        return;
      }
      forgetTouch();
      touch.id = ev.pointerId;
      touch.x = ev.clientX;
      touch.y = ev.clientY;
      const at = { clientX: ev.clientX, clientY: ev.clientY };
      touch.timer = setTimeout(() => {
        if (touch.id === null) return;
        touch.id = null;
        navigator.vibrate?.(10);
        startDrag(at);
      }, HOLD_MS);
    });
    wheel.addEventListener('pointermove', (ev) => {
      if (touch.id === ev.pointerId && Math.hypot(ev.clientX - touch.x, ev.clientY - touch.y) > SLOP_PX) {
        forgetTouch(); // a swipe: the page scrolls
        return;
      }
      if (!picker.active) return;
      wheelAt(ev);
      pickColour(true);
    });
    // While a drag is on, the finger moves the knob and not the page.
    wheel.addEventListener('touchmove', (ev) => { if (picker.active) ev.preventDefault(); }, { passive: false });
    const end = (ev) => {
      if (touch.id === ev.pointerId) {
        // A tap: lifted where it landed, before the hold began a drag.
        forgetTouch();
        if (ev.type === 'pointerup') startDrag(ev); else return;
      }
      if (!picker.active) return;
      picker.active = false;
      wheel.classList.remove('dragging');
      pickColour(true); // the final value is always sent
    };
    wheel.addEventListener('pointerup', end);
    wheel.addEventListener('pointercancel', end);
    wheel.addEventListener('keydown', (ev) => {
      const step = ev.shiftKey ? 15 : 5;
      const keys = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, 0.05], ArrowDown: [0, -0.05] };
      const k = keys[ev.key];
      if (!k) return;
      ev.preventDefault();
      picker.h = (picker.h + k[0] + 360) % 360;
      picker.s = clamp(picker.s + k[1], 0, 1);
      pickColour(true);
    });
    new ResizeObserver(() => renderPicker()).observe(wheel);

    brightness.addEventListener('input', () => {
      picker.v = clamp(Number(brightness.value) / 100, 0.01, 1);
      picker.active = true;
      pickColour(true);
    });
    brightness.addEventListener('change', () => { picker.active = false; pickColour(true); });
  }

  // Exact entry: hex, or R, G and B. Typing changes nothing until Enter
  // (or Set), and leaving the field sends nothing, so a half-typed value
  // can never undo what the wheel did meanwhile: the typed text stays
  // (for the Set button) until the colour changes elsewhere, then the
  // field follows again. After Enter the field lets go of the focus, which
  // also closes a phone's keyboard.
  const exact = $('#exact');
  const exactFields = [$('#hex'), $('#rgb-r'), $('#rgb-g'), $('#rgb-b')];
  const showCurrent = () => renderPicker();
  for (const el of exactFields) {
    el.addEventListener('input', (ev) => {
      // A number field's arrows and arrow keys step the value (no
      // inputType): that is a deliberate change, sent at once.
      if (el.type === 'number' && !ev.inputType) {
        delete el.dataset.dirty;
        sendRGB(el);
        return;
      }
      el.dataset.dirty = 'typing';
    });
    el.addEventListener('blur', () => {
      if (el.dataset.dirty) el.dataset.dirty = 'left';
    });
  }
  function sendRGB(el) {
    const rgb = {};
    for (const c of ['r', 'g', 'b']) rgb[c] = clamp(Math.round(Number($('#rgb-' + c).value) || 0), 0, 255);
    if (el) el.value = String(rgb[el.id.slice(-1)]);
    showColour(rgbToHex(rgb));
    pickColour(false);
  }
  exact.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const hexIn = $('#hex');
    const rgbTyped = exactFields.slice(1).some((el) => el.dataset.dirty);
    const hexTyped = !!hexIn.dataset.dirty || !rgbTyped;
    const value = hexIn.value.trim();
    for (const el of exactFields) delete el.dataset.dirty;
    if (document.activeElement && exact.contains(document.activeElement)) document.activeElement.blur();
    if (!hexTyped) { sendRGB(null); return; }
    const rgb = hexToRgb(value);
    if (rgb) { showColour(rgbToHex(rgb)); pickColour(false); return; }
    // rgb(…) and r,g,b: the server reads them, and explains what is wrong.
    api('PUT', '/api/state', { mode: 'manual', color: value }).then((st) => applyState(st)).catch((e) => { toast(e.message, 'error'); showCurrent(); });
  });

  // Pulse.
  const pulse = $('#pulse');
  pulse.addEventListener('input', () => {
    const p = Number(pulse.value);
    setText($('#pulse-out'), p ? 'Pulse ' + p : 'Steady');
    $('#lamp').dataset.pulse = String(p);
    changeState({ mode: 'manual', pulse: p }, true);
  });
  $('#pulse-form').addEventListener('submit', (ev) => ev.preventDefault());

  // Modes.
  $('.modes').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const mode = ev.submitter && ev.submitter.value;
    if (!mode) return;
    $$('.mode').forEach((b) => b.setAttribute('aria-pressed', String(b.value === mode)));
    changeState({ mode }, false);
  });

  // Weather preview: a preview brings the slider's value into the code's
  // range (inRange).
  const intensity = $('#intensity');
  const previewIntensity = (code) => inRange(code, Number(intensity.value));
  $('#preview-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = ev.submitter && ev.submitter.value;
    if (!v) return;
    const override = v === 'live' ? null : { code: Number(v), intensity: previewIntensity(Number(v)) };
    changeState({ mode: 'weather', weather_override: override }, false);
  });
  intensity.addEventListener('input', () => {
    setText($('#intensity-out'), formatIntensity(intensity.value));
    const st = app.state;
    if (st && st.weather_override) {
      changeState({ mode: 'weather', weather_override: { code: st.weather_override.code, intensity: previewIntensity(st.weather_override.code) } }, true);
    }
  });

  // ---------- favourites ----------

  function renderFavorites(list) {
    app.favorites = list;
    const box = $('#fav-list');
    const removeBox = $('.fav-remove-list');
    $$('.swatch', box).forEach((el) => el.remove());
    removeBox.replaceChildren();
    for (const hex of list) {
      box.append(swatch(hex, false));
      removeBox.append(swatch(hex, true));
    }
    $('#fav-add').disabled = list.length >= 16;
    markCurrentSwatch();
  }
  function swatch(hex, removable) {
    const b = document.createElement('button');
    b.type = 'submit';
    b.name = 'color';
    b.value = hex;
    b.className = 'swatch' + (removable ? ' removable' : '');
    b.title = (removable ? 'Remove ' : '') + hex;
    b.setAttribute('aria-label', (removable ? 'Remove ' : 'Show ') + hex);
    const ns = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('viewBox', '0 0 10 10');
    svg.setAttribute('aria-hidden', 'true');
    const c = document.createElementNS(ns, 'circle');
    c.setAttribute('cx', '5'); c.setAttribute('cy', '5'); c.setAttribute('r', '5'); c.setAttribute('fill', hex);
    svg.append(c);
    b.append(svg);
    if (removable) {
      const x = document.createElementNS(ns, 'svg');
      x.setAttribute('class', 'icon');
      const use = document.createElementNS(ns, 'use');
      use.setAttribute('href', '#i-x');
      x.append(use);
      b.append(x);
    }
    return b;
  }
  function markCurrentSwatch() {
    const cur = app.state && app.state.mode === 'manual' ? app.state.color : '';
    $$('#fav-list .swatch').forEach((b) => b.setAttribute('aria-current', String(b.value === cur)));
  }

  $('#fav-list').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const hex = ev.submitter && ev.submitter.value;
    if (!hex) return;
    showColour(hex);
    pickColour(false);
  });
  $$('form[data-api="favorites"]').forEach((form) => form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const action = form.querySelector('input[name="action"]').value;
    const hex = action === 'add' ? (app.state ? app.state.color : $('#hex').value) : ev.submitter && ev.submitter.value;
    if (!hex) return;
    // One colour at a time: two phones saving at once both keep theirs,
    // and a stale list here cannot drop colours saved elsewhere.
    if (action === 'add' && app.favorites.includes(hex)) { toast(hex + ' is already saved'); return; }
    (action === 'add' ? api('POST', '/api/favorites', { color: hex }) : api('DELETE', '/api/favorites/' + encodeURIComponent(hex.replace(/^#/, ''))))
      .then((res) => { renderFavorites(res.colors); toast(action === 'add' ? 'Saved ' + hex : 'Removed ' + hex); })
      .catch((e) => toast(e.message, 'error'));
  }));

  // ---------- lamps ----------

  const STATUS_TEXT = { handshake: 'Handshake', syncing: 'Syncing', online: 'Online', offline: 'Offline' };
  // A lamp that left: remembered by the server (phase "offline"), or a
  // connection that just ended before it ever authenticated.
  const isOffline = (d) => d.phase === PHASE.offline || d.event === EVENT.disconnected;
  function deviceStatus(d) {
    if (isOffline(d)) return PHASE.offline;
    if (!d.authenticated) return 'handshake';
    return d.synchronized ? 'online' : 'syncing';
  }
  // hostOf drops the port: "192.0.2.7:51234" → "192.0.2.7", "[::1]:80" → "::1".
  function hostOf(addr) {
    const a = addr || '';
    if (a.startsWith('[')) return a.slice(1, a.indexOf(']') > 0 ? a.indexOf(']') : a.length);
    return a.indexOf(':') === a.lastIndexOf(':') && a.includes(':') ? a.slice(0, a.indexOf(':')) : a;
  }
  // Keep in step with deviceLabel in view.go: a lamp that left is known by
  // its address, as the server recognises it when it comes back.
  const deviceLabel = (d) => d.name || (d.phase === PHASE.offline && d.remote_addr ? hostOf(d.remote_addr) : d.id);
  // offlineKey is how the server recognises a lamp across reconnects (the
  // gateway's offlineKey): its name, else its address without the port.
  const offlineKey = (d) => (d.name ? 'name:' + d.name : 'addr:' + hostOf(d.remote_addr));
  // Written like offlineSince in view.go: "10:32 (12 min)", with the date
  // when it is a day or more ago.
  function offlineSince(iso) {
    if (!iso) return '—';
    const t = new Date(iso);
    const d = serverNow() - t.getTime();
    const hm = t.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', hour12: false });
    const when = d >= 86400000 ? t.toLocaleDateString([], { day: 'numeric', month: 'short' }) + ' ' + hm : hm;
    return when + ' (' + humanDuration(d) + ')';
  }

  function renderDevice(d) {
    const list = $('#devices');
    let row = list.querySelector('.device[data-id="' + CSS.escape(d.id) + '"]');
    if (!row) {
      row = $('#device-template').content.firstElementChild.cloneNode(true);
      row.dataset.id = d.id;
      list.append(row);
    }
    const status = deviceStatus(d);
    const offline = status === PHASE.offline;
    row.dataset.status = status;
    // While the server cannot be reached the row is only what was last known.
    row.dataset.stale = String(app.stale && !offline);
    setText(field(row, 'label'), deviceLabel(d));
    setText(field(row, 'status'), app.stale && !offline ? 'Unknown' : STATUS_TEXT[status]);
    setText(field(row, 'remote'), d.remote_addr);
    setText(field(row, 'node'), d.node || '');
    field(row, 'node').parentElement.hidden = !d.node;
    field(row, 'uptime').dataset.since = d.connected_at;
    field(row, 'seen').dataset.ago = d.last_seen;
    setText(field(row, 'sent'), String(d.packets_sent));
    setText(field(row, 'received'), String(d.packets_received));
    const since = field(row, 'offline-since');
    since.dataset.offline = d.disconnected_at || '';
    setText(field(row, 'reason'), capitalize(d.reason || '') || 'Unknown');
    $$('[data-when]', row).forEach((el) => { el.hidden = (el.dataset.when === PHASE.offline) !== offline; });
    $$('input[data-bind="id"]', row).forEach((el) => { el.value = d.id; });
    $$('input[data-bind="debug-next"]', row).forEach((el) => { el.value = String(!d.debug); });
    const dbg = field(row, 'debug');
    dbg.setAttribute('aria-pressed', String(!!d.debug));
    setText(dbg.querySelector('span'), 'Debug ' + (d.debug ? 'on' : 'off'));
    row.querySelectorAll('button').forEach((b) => { b.disabled = offline; });
    const update = row.querySelector('button[value="update"]');
    if (update && !app.firmware) {
      update.disabled = true;
      update.title = 'Upload a firmware image in the Firmware panel first';
    } else if (update) {
      update.removeAttribute('title');
    }
    tickRow(row);
    return row;
  }

  // lampOrder is the server's: connected lamps oldest first, then the ones
  // that left, most recently gone first.
  function lampOrder(a, b) {
    const ao = isOffline(a), bo = isOffline(b);
    if (ao !== bo) return ao ? 1 : -1;
    const gone = (d) => (d.disconnected_at ? Date.parse(d.disconnected_at) : Infinity); // unknown: just now
    if (ao) return gone(b) - gone(a) || 0;
    return Date.parse(a.connected_at) - Date.parse(b.connected_at) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  }

  function renderDevices() {
    const list = $('#devices');
    const all = [...app.devices.values()].sort(lampOrder);
    // The first WORDS.lamps_shown the search finds, as the server shows.
    const q = findQuery();
    const found = all.filter((d) => deviceFinds(q, d));
    const shown = found.slice(0, WORDS.lamps_shown);
    const ids = new Set(shown.map((d) => d.id));
    $$('.device', list).forEach((row) => { if (!ids.has(row.dataset.id)) row.remove(); });
    // Move only rows out of place, so a focused button keeps its focus.
    shown.forEach((d, i) => {
      const row = renderDevice(d);
      if (list.children[i] !== row) list.insertBefore(row, list.children[i] || null);
    });
    setText($('#devices-more'), moreText(found.length));
    setText($('#lamp-count'), String(all.filter((d) => !isOffline(d)).length));
    $('#devices-empty').hidden = app.devices.size > 0;
    updateFind();
    updateSynced();
    updateLogLamps();
    renderUpdates();
  }

  // dropOffline forgets the offline rows of the lamp with that key except
  // keep's; it returns the last one dropped.
  function dropOffline(key, keep) {
    let dropped = null;
    for (const [id, d] of app.devices) {
      if (id !== keep && d.phase === PHASE.offline && offlineKey(d) === key) { app.devices.delete(id); dropped = d; }
    }
    return dropped;
  }

  // Offline rows a connection stood in for while its handshake ran, by the
  // connection's id: if the handshake fails, the server still remembers the
  // lamp that left, so the row comes back.
  const standIns = new Map();

  function onDevice(d) {
    if (d.event === EVENT.disconnected) {
      app.devices.set(d.id, d);
      const replaced = standIns.get(d.id);
      standIns.delete(d.id);
      if (d.phase === PHASE.offline) {
        // The server remembers one departed lamp per key, until it is back.
        dropOffline(offlineKey(d), d.id);
      } else {
        // It never authenticated, so nothing is remembered: show it go,
        // then drop it and put back the row it had replaced.
        setTimeout(() => {
          const cur = app.devices.get(d.id);
          if (!cur || cur.phase === PHASE.offline || cur.event !== EVENT.disconnected) return;
          app.devices.delete(d.id);
          if (replaced && !app.devices.has(replaced.id)) app.devices.set(replaced.id, replaced);
          renderDevices();
        }, 4000);
      }
      renderDevices();
      return;
    }
    // The lamp is back: its live row replaces the offline one. A new
    // connection has no name until its handshake, so then only an unnamed
    // lamp at the same address is recognised, as the server does.
    if (d.event === EVENT.authenticated || (d.event === EVENT.connected && !d.name)) {
      const replaced = dropOffline(offlineKey(d), d.id);
      if (d.event === EVENT.connected && replaced) standIns.set(d.id, replaced);
      if (d.event === EVENT.authenticated) {
        // A named lamp from the address of an unnamed one that left is
        // another lamp: the server still remembers that one.
        const stoodIn = standIns.get(d.id);
        standIns.delete(d.id);
        if (stoodIn && offlineKey(stoodIn) !== offlineKey(d) && !app.devices.has(stoodIn.id)) app.devices.set(stoodIn.id, stoodIn);
      }
    }
    app.devices.set(d.id, d);
    renderDevices();
  }

  // ---------- each lamp (the registry) ----------

  const MODE_NAMES = { off: 'Off', weather: 'Weather', manual: 'Manual' };
  const lampLabel = (l) => l.label || l.id;
  // lampShows says in words what a lamp shows.
  function lampShows(l) {
    if (l.follows_shared) return 'Follows all lamps';
    const st = l.state || {};
    if (st.mode === 'manual') return 'Own colour ' + st.color + (st.pulse ? ' · pulse ' + st.pulse : '');
    return 'Own: ' + (MODE_NAMES[st.mode] || st.mode);
  }
  // The connection that has been up longest says since when a lamp is online.
  const onlineSince = (l) => (l.devices || []).map((d) => d.connected_at).filter(Boolean).sort()[0] || '';

  function renderLamp(l) {
    const list = $('#lamp-cards');
    let card = list.querySelector('.lamp-card[data-lamp="' + CSS.escape(l.id) + '"]');
    if (!card) {
      card = $('#lamp-card-template').content.firstElementChild.cloneNode(true);
      card.dataset.lamp = l.id;
    }
    const st = l.state || {};
    card.dataset.status = l.online ? 'online' : 'offline';
    card.dataset.follows = String(!!l.follows_shared);
    card.dataset.mode = st.mode || '';
    setText(field(card, 'lamp-label'), lampLabel(l));
    setText(field(card, 'lamp-shows'), lampShows(l));
    setText(field(card, 'lamp-status'), l.online ? 'Online' : 'Offline');
    if (st.color) field(card, 'lamp-swatch').setAttribute('fill', st.color);
    $$('input[data-bind="lamp"]', card).forEach((el) => { el.value = l.id; });
    card.querySelectorAll('[data-lamp-mode]').forEach((b) => b.setAttribute('aria-pressed', String(b.dataset.lampMode === st.mode)));
    const keep = (el) => document.activeElement === el;
    const colour = card.querySelector('[data-lamp-input="color"]');
    if (!keep(colour) && st.color) colour.value = st.color;
    const bright = card.querySelector('[data-lamp-input="brightness"]');
    if (!keep(bright) && st.brightness !== undefined) bright.value = String(st.brightness);
    setText(field(card, 'lamp-brightness'), bright.value + ' %');
    const pulse = card.querySelector('[data-lamp-input="pulse"]');
    if (!keep(pulse) && st.pulse !== undefined) pulse.value = String(st.pulse);
    setText(field(card, 'lamp-pulse'), pulse.value === '0' ? 'Steady' : pulse.value);
    const name = card.querySelector('input[name="label"]');
    if (!keep(name)) name.value = lampLabel(l);
    const follow = card.querySelector('[data-lamp-action="follow"]');
    follow.disabled = !!l.follows_shared;
    setText(follow, l.follows_shared ? 'Follows all lamps' : 'Follow all lamps');
    setText(field(card, 'lamp-since-title'), l.online ? 'Online since' : 'Offline since');
    const since = field(card, 'lamp-since');
    since.dataset.since = l.online ? onlineSince(l) : (l.last_seen || '');
    setText(field(card, 'lamp-firmware'), l.firmware_version || 'Unknown');
    setText(field(card, 'lamp-id'), l.id);
    setText(field(card, 'lamp-devices'), String((l.devices || []).length));
    // The cluster nodes holding it, as web/view.go lampNodes lists them.
    const nodes = [...new Set((l.devices || []).map((d) => d.node).filter(Boolean))];
    setText(field(card, 'lamp-nodes'), nodes.join(', '));
    field(card, 'lamp-nodes').parentElement.hidden = nodes.length === 0;
    card.querySelector('form[data-lamp-form="forget"]').hidden = !!l.online;
    tickLamp(card);
    return card;
  }

  function tickLamp(card) {
    const since = field(card, 'lamp-since');
    const iso = since.dataset.since;
    setText(since, !iso || iso.startsWith('0001-') ? '—' : offlineSince(iso));
  }

  function renderLamps() {
    const list = $('#lamp-cards');
    if (!list) return;
    const q = findQuery();
    const shown = [...app.lamps.keys()].sort().filter((id) => lampFinds(q, app.lamps.get(id))).slice(0, WORDS.lamps_shown);
    const ids = new Set(shown);
    $$('.lamp-card', list).forEach((card) => { if (!ids.has(card.dataset.lamp)) card.remove(); });
    // Move only cards out of place, so an open card keeps its focus.
    shown.forEach((id, i) => {
      const card = renderLamp(app.lamps.get(id));
      if (list.children[i] !== card) list.insertBefore(card, list.children[i] || null);
    });
    $('#lamp-cards-box').hidden = app.lamps.size === 0;
    updateFind();
    updateSynced();
  }

  // ---------- finding a lamp (the lamps card's search) ----------

  // finds, lampFinds and deviceFinds are web/find.go's: the search, in any
  // case, is part of one of the names.
  const finds = (q, ...names) => !q || names.some((n) => String(n || '').toLowerCase().includes(q));
  const lampFinds = (q, l) => finds(q, l.label, l.id);
  const deviceFinds = (q, d) => finds(q, d.name, d.lamp, d.id, d.remote_addr, (app.lamps.get(d.lamp) || {}).label);
  const findQuery = () => ($('#lamp-find') ? $('#lamp-find').value.trim().toLowerCase() : '');
  // findText and moreText are web/find.go's.
  function findText(q, found, total) {
    const shown = WORDS.lamps_shown;
    if (!q && total <= shown) return '';
    if (!q) return 'Showing ' + shown + ' of ' + total + ' lamps: find one by name or id.';
    if (found === 0) return 'No lamp matches “' + q + '”.';
    if (total === 1) return 'The lamp matches “' + q + '”.';
    if (found > shown) return found + ' of ' + total + ' lamps match “' + q + '”; showing the first ' + shown + '.';
    return found + ' of ' + total + ' lamps match “' + q + '”.';
  }
  const moreText = (found) => (found <= WORDS.lamps_shown ? '' : 'Showing the first ' + WORDS.lamps_shown + ' of ' + found + ' connections.');

  // updateFind says what the search found, and offers it once there are
  // WORDS.lamp_find_from lamps. The search counts the lamps, or the
  // connections without a registry, as the server does.
  function updateFind() {
    const input = $('#lamp-find');
    if (!input) return;
    const typed = input.value.trim();
    const q = typed.toLowerCase();
    const haveLamps = app.lamps.size > 0;
    const total = haveLamps ? app.lamps.size : app.devices.size;
    const found = haveLamps ? [...app.lamps.values()].filter((l) => lampFinds(q, l)).length
      : [...app.devices.values()].filter((d) => deviceFinds(q, d)).length;
    setText($('#lamp-find-status'), findText(typed, found, total));
    $('#lamp-find-form').hidden = !typed && Math.max(app.lamps.size, app.devices.size) < WORDS.lamp_find_from;
  }
  if ($('#lamp-find')) {
    $('#lamp-find').addEventListener('input', () => { renderLamps(); renderDevices(); });
    // The search finds as it is typed; Enter asks the server for nothing.
    $('#lamp-find-form').addEventListener('submit', (e) => e.preventDefault());
  }

  function onLamp(l) {
    if (l.forgotten) app.lamps.delete(l.id);
    else app.lamps.set(l.id, l);
    renderLamps();
  }

  // A lamp's own controls: each change goes to that lamp only.
  function lampCall(id, method, path, body) {
    return api(method, '/api/lamps/' + encodeURIComponent(id) + path, body)
      .catch((e) => { toast(e.message, 'error'); const l = app.lamps.get(id); if (l) renderLamp(l); });
  }
  function changeLamp(id, change) {
    lampCall(id, 'PUT', '/state', change).then((st) => {
      const l = app.lamps.get(id);
      if (st && l) { l.state = st; l.follows_shared = false; renderLamp(l); updateSynced(); }
    });
  }
  const lampOf = (el) => el.closest('.lamp-card').dataset.lamp;
  if ($('#lamp-cards')) {
    const list = $('#lamp-cards');
    list.addEventListener('input', (ev) => {
      const el = ev.target.closest('[data-lamp-input]');
      if (!el) return;
      const card = el.closest('.lamp-card');
      if (el.dataset.lampInput === 'brightness') setText(field(card, 'lamp-brightness'), el.value + ' %');
      if (el.dataset.lampInput === 'pulse') setText(field(card, 'lamp-pulse'), el.value === '0' ? 'Steady' : el.value);
    });
    list.addEventListener('change', (ev) => {
      const el = ev.target.closest('[data-lamp-input]');
      if (!el) return;
      const id = lampOf(el);
      const kind = el.dataset.lampInput;
      if (kind === 'color') changeLamp(id, { mode: 'manual', color: el.value });
      else changeLamp(id, { [kind]: Number(el.value) });
    });
    list.addEventListener('submit', (ev) => {
      const form = ev.target.closest('form[data-lamp-form]');
      if (!form) return;
      ev.preventDefault();
      const id = lampOf(form);
      if (form.dataset.lampForm === 'state') {
        const mode = ev.submitter && ev.submitter.dataset.lampMode;
        if (mode) changeLamp(id, { mode });
        return;
      }
      if (form.dataset.lampForm === 'follow') {
        lampCall(id, 'DELETE', '/state').then((l) => { if (l && l.id) onLamp(l); });
        return;
      }
      if (form.dataset.lampForm === 'forget') {
        const btn = ev.submitter || form.querySelector('button');
        if (!confirmed(btn)) return;
        const label = lampLabel(app.lamps.get(id) || { id });
        lampCall(id, 'DELETE', '').then((res) => {
          if (res === undefined) return; // refused: lampCall said why
          onLamp({ id, forgotten: true });
          toast('Forgot ' + label + '; it comes back as a new lamp if it connects again');
        });
        return;
      }
      const label = form.label.value.trim();
      lampCall(id, 'PATCH', '', { label }).then((l) => {
        if (!l || !l.id) return;
        form.label.blur();
        onLamp(l);
        toast('Renamed to ' + lampLabel(l));
      });
    });
  }

  function updateSynced() {
    const el = $('#synced');
    if (!el) return;
    el.classList.toggle('stale', app.stale);
    if (app.stale) { setText(el, 'not live: the server cannot be reached'); return; }
    const lamps = [...app.devices.values()].filter((d) => d.authenticated && !isOffline(d));
    if (!lamps.length) { setText(el, 'no lamp connected'); return; }
    // Lamps with a state of their own do not show what this card shows.
    const online = [...app.lamps.values()].filter((l) => l.online);
    const following = online.filter((l) => l.follows_shared).length;
    if (following < online.length) { setText(el, following + ' of ' + online.length + ' lamps show this'); return; }
    const synced = lamps.filter((d) => d.synchronized).length;
    setText(el, synced === lamps.length ? (lamps.length === 1 ? '1 lamp shows this' : lamps.length + ' lamps show this') : synced + ' of ' + lamps.length + ' lamps in step');
  }

  function tickRow(row) {
    const since = field(row, 'offline-since');
    if (row.dataset.status === PHASE.offline) {
      if (since) setText(since, offlineSince(since.dataset.offline));
    }
    const up = field(row, 'uptime');
    if (up && up.dataset.since) setText(up, humanDuration(serverNow() - Date.parse(up.dataset.since)));
    const seen = field(row, 'seen');
    if (seen && seen.dataset.ago) setText(seen, ago(seen.dataset.ago));
  }

  // confirmed is a second tap on a button with data-confirm: the first one
  // only arms it for 3 s, so a thumb brushing past does not reboot, update
  // or roll back anything. Buttons without data-confirm go at once.
  function confirmed(btn) {
    const confirmText = btn.dataset.confirm;
    if (confirmText && !btn.classList.contains('armed')) {
      btn.classList.add('armed');
      const label = btn.querySelector('span');
      const before = label.textContent;
      label.textContent = btn.dataset.confirmLabel || confirmText;
      btn.setAttribute('aria-label', confirmText);
      btn._disarm = setTimeout(() => { btn.classList.remove('armed'); label.textContent = before; btn.removeAttribute('aria-label'); }, 3000);
      btn._before = before;
      return false;
    }
    if (btn.classList.contains('armed')) {
      clearTimeout(btn._disarm);
      btn.classList.remove('armed');
      btn.querySelector('span').textContent = btn._before;
      btn.removeAttribute('aria-label');
    }
    return true;
  }

  // Commands from a lamp's row.
  $('#devices').addEventListener('submit', (ev) => {
    const form = ev.target.closest('form[data-api="command"]');
    if (!form) return;
    ev.preventDefault();
    const btn = ev.submitter || form.querySelector('button');
    if (!confirmed(btn)) return;
    const id = form.querySelector('input[name="device"]').value;
    const command = btn.value || form.querySelector('input[name="command"]').value;
    const body = { command, devices: [id] };
    if (command === 'debug') body.on = form.querySelector('input[name="on"]').value === 'true';
    const label = (app.devices.get(id) && deviceLabel(app.devices.get(id))) || id;
    api('POST', '/api/commands', body)
      .then(() => toast({ reset: 'Reboot sent to ', update: 'Update sent to ', debug: 'Debug ' + (body.on ? 'on' : 'off') + ' for ' }[command] + label))
      .catch((e) => toast(e.message, 'error'));
  });

  // ---------- weather ----------

  // The MQTT status line, worded as web/pages.go mqttText does.
  function applyMQTT(st) {
    const el = $('#mqtt-status');
    if (!el || !st) return;
    el.textContent = st.connected
      ? 'MQTT: connected to ' + st.broker + '; Home Assistant finds the lamps by itself.'
      : 'MQTT: not connected to ' + st.broker + ' (' + st.error + '); retrying.';
  }

  // The cluster status line, worded as web/pages.go clusterText does.
  function applyCluster(st) {
    const el = $('#cluster-status');
    if (!el || !st || !st.nodes) return;
    const parts = st.nodes.map((n) => n.name + (n.self ? ' (this one)' : '') + ' ' + n.lamps + (n.lamps === 1 ? ' lamp' : ' lamps'));
    let text = 'Cluster of ' + st.nodes.length + ' nodes: ' + parts.join(', ') + '.';
    if (st.nats !== 'connected') text += ' NATS is ' + st.nats + ': changes wait until it is back.';
    el.textContent = text;
  }

  function applyWeather(r) {
    app.weather = r;
    if (!r) return;
    const code = r.reading ? r.reading.code : 3;
    const [text, cls] = STATUS[r.status] || [r.status, 'warn'];
    const status = field(document, 'wx-status');
    setText(status, text);
    status.className = 'pill ' + cls;
    const icon = $('#weather .wx-icon');
    icon.dataset.wx = String(code);
    $('#wx-now-use').setAttribute('href', '#i-' + (WEATHER_ICONS[code] || 'cloud'));
    setText(field(document, 'wx-name'), WEATHER_NAMES[code] || 'unknown weather');
    setText(field(document, 'wx-intensity'), formatIntensity(r.reading ? r.reading.intensity : 9));
    setText(field(document, 'wx-description'), r.description || '');
    const err = field(document, 'wx-error');
    setText(err, r.error || '');
    err.hidden = !r.error;
    const o = r.observation;
    setText(field(document, 'wx-place'), (o && o.place) || '—');
    setText(field(document, 'wx-observation'), o ? (o.description || o.main) + ', ' + Math.round(o.temp_c) + ' °C, ' + o.cloud_cover + ' % clouds, wind ' + o.wind_speed.toFixed(1) + ' m/s' : '—');
    field(document, 'wx-fetched').dataset.ago = r.fetched_at || '';
    field(document, 'wx-next').dataset.in = r.next_fetch || '';
    tickWeather();
    const refresh = $('#weather .card-action .icon-button');
    refresh.classList.remove('spinning');
    // Without a key there is nothing to fetch: say so instead of spinning.
    const noKey = r.status === 'no_api_key';
    refresh.disabled = noKey;
    const label = noKey ? 'Fetching needs an OpenWeatherMap key (weather.api_key)' : 'Fetch the weather now';
    refresh.title = label;
    refresh.setAttribute('aria-label', label);
  }
  function tickWeather() {
    const f = field(document, 'wx-fetched');
    if (f.dataset.ago !== undefined) setText(f, ago(f.dataset.ago));
    const n = field(document, 'wx-next');
    if (n.dataset.in !== undefined) setText(n, until(n.dataset.in));
  }
  $('form[data-api="weather-refresh"]').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const btn = ev.target.querySelector('.icon-button');
    btn.classList.add('spinning');
    api('POST', '/api/weather/refresh')
      // The next weather event stops the spinner; this only bounds it.
      .then(() => { toast('Asking OpenWeatherMap…'); setTimeout(() => btn.classList.remove('spinning'), 15000); })
      .catch((e) => { btn.classList.remove('spinning'); toast(e.message, 'error'); });
  });

  // ---------- debug log ----------

  const MAX_LOG_LINES = 500;
  const log = { paused: false, held: [] };
  const logBox = $('#log');
  const matchesFilter = (l) => !app.logFilter || l.device === app.logFilter || l.name === app.logFilter || l.lamp === app.logFilter;

  function logRow(l, fresh) {
    const row = $('#log-template').content.firstElementChild.cloneNode(true);
    row.dataset.device = l.device;
    const t = field(row, 'time');
    t.setAttribute('datetime', l.time);
    t.textContent = clock(l.time);
    field(row, 'lamp').textContent = l.name || l.device;
    // A lamp flooding its log is sent live only in part (device/logs.go).
    const skipped = l.skipped ? '[' + l.skipped + ' earlier lines not shown live; download the log for all] ' : '';
    field(row, 'message').textContent = skipped + l.message;
    if (fresh) row.classList.add('fresh');
    return row;
  }
  function appendLog(lines, fresh) {
    if (!lines.length) return;
    const stick = logBox.scrollHeight - logBox.scrollTop - logBox.clientHeight < 40;
    const frag = document.createDocumentFragment();
    for (const l of lines) frag.append(logRow(l, fresh));
    logBox.append(frag);
    while (logBox.children.length > MAX_LOG_LINES) logBox.firstElementChild.remove();
    $('#log-empty').hidden = logBox.children.length > 0;
    if (stick) logBox.scrollTop = logBox.scrollHeight;
  }
  function onLog(l) {
    if (!matchesFilter(l)) return;
    if (log.paused) {
      log.held.push(l);
      setText($('#log-pause span'), 'Resume (' + log.held.length + ' new)');
      return;
    }
    appendLog([l], true);
  }
  async function reloadLog() {
    const q = app.logFilter ? '?device=' + encodeURIComponent(app.logFilter) + '&limit=200' : '?limit=200';
    try {
      const lines = await api('GET', '/api/logs' + q);
      logBox.replaceChildren();
      appendLog(lines, false);
      $('#log-empty').hidden = lines.length > 0;
      logBox.scrollTop = logBox.scrollHeight;
    } catch (e) {
      toast(e.message, 'error');
    }
  }
  function updateLogLamps() {
    const sel = $('#log-filter');
    const have = new Set($$('option', sel).map((o) => o.value));
    // A lamp by its lamp id, as web/pages.go logLamps offers it.
    for (const d of app.devices.values()) {
      const v = d.lamp || d.id;
      if (!have.has(v)) {
        const o = document.createElement('option');
        o.value = v;
        o.textContent = d.name || v;
        sel.append(o);
        have.add(v);
      }
    }
  }
  $('#log-filter').addEventListener('change', (ev) => {
    app.logFilter = ev.target.value;
    $('#log-download').href = '/logs.txt' + (app.logFilter ? '?device=' + encodeURIComponent(app.logFilter) : '');
    const url = new URL(location.href);
    if (app.logFilter) url.searchParams.set('log', app.logFilter); else url.searchParams.delete('log');
    history.replaceState(null, '', url);
    log.held = [];
    reloadLog();
  });
  $('#log-tools').addEventListener('submit', (ev) => ev.preventDefault());
  $('#log-pause').addEventListener('click', () => {
    log.paused = !log.paused;
    const btn = $('#log-pause');
    btn.setAttribute('aria-pressed', String(log.paused));
    btn.querySelector('use').setAttribute('href', log.paused ? '#i-play' : '#i-pause');
    if (!log.paused) {
      appendLog(log.held, true);
      log.held = [];
    }
    setText(btn.querySelector('span'), log.paused ? 'Resume' : 'Pause');
  });

  // ---------- firmware ----------

  // The panel exists only when the server keeps firmware (static markup in
  // templates/firmware.templ; the sentences repeat view.go's firmware views).
  const fwCard = $('#firmware');
  app.updates = new Map(); // lamp → its latest rollout update

  const formatSize = (n) => {
    n = Number(n) || 0;
    const trim = (f) => f.toFixed(1).replace(/\.0$/, '');
    if (n < 1024) return n + ' B';
    if (n < 1048576) return trim(n / 1024) + ' KiB';
    return trim(n / 1048576) + ' MiB';
  };
  const shortSHA = (h) => (h && h.length > 20 ? h.slice(0, 12) + '…' + h.slice(-6) : h || '');
  const orUnknown = (v) => v || 'an unknown version';

  function applyFirmware(st) {
    if (!fwCard || !st) return;
    const cur = st.current;
    $('#fw-current').hidden = !cur;
    $('#fw-none').hidden = !!cur;
    if (cur) {
      setText(field(fwCard, 'fw-project'), cur.project || '(no project name)');
      setText(field(fwCard, 'fw-version'), cur.version);
      field(fwCard, 'fw-uploaded').dataset.ago = cur.uploaded_at || '';
      setText(field(fwCard, 'fw-built'), cur.build_date + ' ' + cur.build_time);
      setText(field(fwCard, 'fw-idf'), cur.idf_version);
      setText(field(fwCard, 'fw-chip'), cur.chip);
      const size = field(fwCard, 'fw-size');
      setText(size, formatSize(cur.size));
      size.title = cur.size + ' bytes';
      const sha = field(fwCard, 'fw-sha');
      setText(sha, shortSHA(cur.sha256));
      sha.title = cur.sha256;
      $('#fw-copy').dataset.sha = cur.sha256;
    }
    const prev = st.previous;
    $('#fw-previous').hidden = !prev;
    if (prev) {
      setText(field(fwCard, 'fw-prev-project'), prev.project || '(no project name)');
      setText(field(fwCard, 'fw-prev-version'), prev.version);
      setText(field(fwCard, 'fw-prev-built'), 'built ' + prev.build_date + ' ' + prev.build_time);
    }
    $('#fw-update-all').disabled = !cur;
    if (app.firmware !== !!cur) {
      app.firmware = !!cur;
      renderDevices();
    }
    app.updates = new Map((st.updates || []).map((u) => [u.lamp, u]));
    renderUpdates();
    tickFirmware();
  }

  function onFirmwareUpdate(u) {
    app.updates.set(u.lamp, u);
    renderUpdates();
  }

  // updateView says where a lamp stands; keep in step with firmwareUpdateView.
  function updateView(u) {
    const d = app.devices.get(u.device_id);
    const online = !!d && !isOffline(d);
    const pending = (detail) => (online ? detail : detail + ' · offline');
    const v = { text: u.state, cls: 'info', detail: '', progress: false, percent: 0 };
    switch (u.state) {
      case 'asked':
        v.text = 'Asked';
        v.detail = pending('told to update to ' + orUnknown(u.version));
        break;
      case 'downloading':
        v.percent = u.total > 0 ? Math.min(100, Math.max(0, Math.floor((u.sent * 100) / u.total))) : 0;
        v.text = 'Downloading ' + v.percent + ' %';
        v.progress = true;
        v.detail = pending(formatSize(u.sent) + ' of ' + formatSize(u.total));
        break;
      case 'downloaded':
        v.percent = 100;
        v.progress = true;
        v.text = 'Downloaded';
        v.detail = pending('image sent; it flashes and restarts');
        break;
      case 'back':
        v.cls = 'good';
        v.text = u.back_at ? 'Back after ' + humanDuration(Date.parse(u.back_at) - Date.parse(u.asked_at)) : 'Back';
        v.detail = 'now on ' + orUnknown(u.version);
        if (u.running_version && u.running_version !== u.version) v.detail += ' (was ' + u.running_version + ')';
        break;
      case 'overdue':
        v.cls = 'bad';
        v.text = 'Overdue';
        v.detail = 'not back after ' + humanDuration(serverNow() - Date.parse(u.asked_at)) + '; check its power and Wi-Fi, or flash it over USB';
        break;
    }
    if (u.running_version && u.state !== 'back') v.detail += ' · ran ' + u.running_version;
    return v;
  }

  function renderUpdates() {
    if (!fwCard) return;
    const list = $('#fw-updates');
    const updates = [...app.updates.values()].sort((a, b) => Date.parse(b.asked_at) - Date.parse(a.asked_at));
    const keep = new Set(updates.map((u) => u.lamp));
    $$('.fw-update', list).forEach((row) => { if (!keep.has(row.dataset.lamp)) row.remove(); });
    for (const u of updates) {
      let row = $$('.fw-update', list).find((r) => r.dataset.lamp === u.lamp);
      if (!row) row = $('#fw-update-template').content.firstElementChild.cloneNode(true);
      list.append(row); // newest first: appending in order sorts the rows
      const v = updateView(u);
      row.dataset.lamp = u.lamp;
      row.dataset.state = u.state;
      setText(field(row, 'lamp'), u.lamp);
      const state = field(row, 'state');
      setText(state, v.text);
      state.className = 'pill ' + v.cls;
      const bar = field(row, 'progress');
      bar.hidden = !v.progress;
      bar.value = v.percent;
      setText(field(row, 'detail'), v.detail);
      const asked = field(row, 'asked');
      asked.setAttribute('datetime', u.asked_at);
      setText(asked, new Date(u.asked_at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', hour12: false }));
    }
    $('#fw-updates-empty').hidden = updates.length > 0;
  }

  function tickFirmware() {
    if (!fwCard) return;
    const up = field(fwCard, 'fw-uploaded');
    if (up && up.dataset.ago) setText(up, ago(up.dataset.ago));
  }

  async function reloadFirmware() {
    applyFirmware(await api('GET', '/api/firmware'));
  }

  if (fwCard) {
    const upload = $('#fw-upload');
    const fileInput = $('#fw-file');
    const uploadError = $('#fw-error');
    const showUploadError = (msg) => {
      setText(uploadError, msg);
      uploadError.hidden = !msg;
    };
    fileInput.addEventListener('change', () => showUploadError(''));
    upload.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const file = fileInput.files && fileInput.files[0];
      if (!file) { showUploadError('Choose the application .bin from your build directory first.'); return; }
      const max = Number(upload.dataset.maxSize);
      if (max && file.size > max) {
        // Refused here, before megabytes travel for nothing; the server says the same.
        showUploadError('The file is ' + formatSize(file.size) + ', larger than firmware.max_size, ' + upload.dataset.maxLabel + '. An ESP32 application is usually 1-2 MiB: check that this is the application .bin and not a merged flash image.');
        return;
      }
      // The override goes before the file: the server reads the upload as a stream.
      const body = new FormData();
      if ($('#fw-allow').checked) body.append('allow_project_change', '1');
      body.append('firmware', file, file.name);
      const btn = $('#fw-send');
      btn.disabled = true;
      btn.classList.add('busy');
      setText(btn.querySelector('span'), 'Checking…');
      showUploadError('');
      api('POST', '/api/firmware', body)
        .then((info) => {
          toast('Uploaded ' + info.project + ' ' + info.version + '. Press Update to send it to the lamps.');
          upload.reset();
          $('#fw-flash').hidden = true;
          return reloadFirmware();
        })
        .catch((e) => showUploadError(e.message))
        .finally(() => {
          btn.disabled = false;
          btn.classList.remove('busy');
          setText(btn.querySelector('span'), 'Upload');
        });
    });

    $('#fw-previous').addEventListener('submit', (ev) => {
      ev.preventDefault();
      if (!confirmed($('#fw-rollback'))) return;
      api('POST', '/api/firmware/rollback')
        .then((info) => { toast('Rolled back to ' + info.project + ' ' + info.version + '. Press Update to send it to the lamps.'); return reloadFirmware(); })
        .catch((e) => toast(e.message, 'error'));
    });

    $('form[data-api="update-all"]').addEventListener('submit', (ev) => {
      ev.preventDefault();
      if (!confirmed($('#fw-update-all'))) return;
      api('POST', '/api/commands', { command: 'update' })
        .then((res) => toast(res.sent_to.length ? 'Update sent to ' + (res.sent_to.length === 1 ? '1 lamp' : res.sent_to.length + ' lamps') : 'No lamp is connected to update'))
        .catch((e) => toast(e.message, 'error'));
    });

    // Copy the whole digest; plain HTTP on a LAN has no Clipboard API, so
    // fall back to a selected text field.
    $('#fw-copy').addEventListener('click', () => {
      const sha = $('#fw-copy').dataset.sha;
      const done = () => toast('SHA-256 copied');
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(sha).then(done, () => toast('Could not copy; the digest is in the tooltip', 'error'));
        return;
      }
      const ta = document.createElement('textarea');
      ta.value = sha;
      ta.setAttribute('readonly', '');
      ta.className = 'visually-hidden';
      document.body.append(ta);
      ta.select();
      const ok = document.execCommand('copy');
      ta.remove();
      if (ok) done(); else toast('Could not copy; the digest is in the tooltip', 'error');
    });
  }

  // ---------- live connection ----------

  const conn = $('#conn');
  let source = null;
  let retryTimer = 0;
  let failures = 0;
  let hiddenAt = 0;

  function setConn(status) {
    conn.dataset.conn = status;
    const stale = status === 'reconnecting' || status === 'offline';
    if (stale !== app.stale) {
      app.stale = stale;
      document.documentElement.classList.toggle('stale', stale);
      renderDevices();
    }
    setText(conn.querySelector('.conn-text'), { live: 'Live', connecting: 'Connecting', reconnecting: 'Reconnecting', offline: 'Offline' }[status]);
  }

  function connect() {
    clearTimeout(retryTimer);
    if (source) source.close();
    if (!navigator.onLine) { setConn('offline'); return; }
    setConn(failures ? 'reconnecting' : 'connecting');
    const es = new EventSource('/api/events');
    source = es;
    es.onopen = () => { failures = 0; setConn('live'); };
    es.onerror = () => {
      if (source !== es) return;
      if (es.readyState === EventSource.CLOSED) {
        // The browser gave up (an error status, often an expired login):
        // ask the API why, then try again with a growing pause.
        failures++;
        setConn(navigator.onLine ? 'reconnecting' : 'offline');
        api('GET', '/api/state').then(() => {}, () => {});
        retryTimer = setTimeout(connect, Math.min(30000, 1000 * 2 ** Math.min(failures, 5)));
      } else {
        setConn('reconnecting'); // the browser retries by itself
      }
    };
    const on = (name, fn) => es.addEventListener(name, (ev) => {
      let data;
      try { data = JSON.parse(ev.data); } catch (e) { return; }
      fn(data);
    });
    on('state', (st) => applyState(st));
    on('devices', (list) => {
      app.devices = new Map((list || []).map((d) => [d.id, d]));
      renderDevices();
    });
    on('device', onDevice);
    on('lamps', (list) => {
      app.lamps = new Map((list || []).map((l) => [l.id, l]));
      renderLamps();
    });
    on('lamp', onLamp);
    on('log', onLog);
    on('weather', applyWeather);
    on('favorites', (f) => renderFavorites(f.colors || []));
    on('firmware', onFirmwareUpdate);
    on('firmware_status', applyFirmware);
    on('mqtt', applyMQTT);
    on('cluster', applyCluster);
    // A scene or schedule saved elsewhere (another phone, a schedule that
    // ran): read the lists again.
    on('scenes', () => reloadScenes());
    on('schedules', () => reloadSchedules());
  }

  window.addEventListener('online', connect);
  window.addEventListener('offline', () => setConn('offline'));
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) { hiddenAt = Date.now(); return; }
    // Phones freeze background tabs and drop their connections; a fresh
    // stream starts with snapshots, so the page is in sync again at once.
    if (!source || source.readyState !== EventSource.OPEN || Date.now() - hiddenAt > 15000) connect();
  });

  // Relative times tick once a second while the page is visible.
  setInterval(() => {
    if (document.hidden) return;
    $$('.device').forEach(tickRow);
    $$('.lamp-card').forEach(tickLamp);
    tickWeather();
    tickFirmware();
    tickPreview();
    tickSchedules();
  }, 1000);


  // ---------- scenes, schedules, sleep timer ----------

  const auto = { scenes: [], schedules: [], editing: false, editId: null };
  const SLEEP_ID = 'sleep-timer';
  const SLEEP_FADE_MIN = 2; // the last minutes of a sleep timer fade to off
  const DAY_NAMES = { sun: 'Sun', mon: 'Mon', tue: 'Tue', wed: 'Wed', thu: 'Thu', fri: 'Fri', sat: 'Sat' };

  async function reloadScenes() {
    if (!$('#scenes')) return;
    try { auto.scenes = await api('GET', '/api/scenes'); } catch (e) { return; }
    renderScenes();
  }
  async function reloadSchedules() {
    if (!$('#schedules')) return;
    try { auto.schedules = await api('GET', '/api/schedules'); } catch (e) { return; }
    renderSchedules();
  }

  function renderScenes() {
    const list = $('#scene-list');
    if (!list) return;
    list.replaceChildren(...auto.scenes.map((sc) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'button scene';
      b.dataset.scene = sc.id;
      b.textContent = sc.name;
      return b;
    }));
    const sel = $('#schedule-form select[name="scene"]');
    if (sel) sel.replaceChildren(...auto.scenes.map((sc) => new Option(sc.name, sc.id)));
  }

  // nextInWords says when a schedule runs next, in the server's zone:
  // "today 06:30", "tomorrow 06:30", "Mon 06:30", or "in 12 min" soon.
  function nextInWords(iso) {
    if (!iso) return 'off';
    const at = Date.parse(iso);
    const left = at - serverNow();
    if (left < 3600000) return 'in ' + humanDuration(Math.max(left, 0));
    const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d)/.exec(iso);
    const off = /([+-])(\d\d):(\d\d)$/.exec(iso);
    const shift = off ? (off[1] === '-' ? -1 : 1) * (Number(off[2]) * 60 + Number(off[3])) * 60000 : 0;
    const today = new Date(serverNow() + shift).toISOString().slice(0, 10);
    const tomorrow = new Date(serverNow() + shift + 86400000).toISOString().slice(0, 10);
    if (m[1] === today) return 'today ' + m[2];
    if (m[1] === tomorrow) return 'tomorrow ' + m[2];
    const wd = new Date(m[1] + 'T12:00:00Z').getUTCDay();
    return Object.values(DAY_NAMES)[wd] + ' ' + m[1].slice(5).replace('-', '/') + ' ' + m[2];
  }

  function describeSchedule(sc) {
    const days = sc.days && sc.days.length ? sc.days.map((d) => DAY_NAMES[d] || d).join(' ') : 'every day';
    const what = sc.do.scene ? 'scene ' + ((auto.scenes.find((x) => x.id === sc.do.scene) || {}).name || sc.do.scene)
      : sc.do.state.mode === 'off' ? 'off' : sc.do.state.mode === 'weather' ? 'weather' : (sc.do.state.color || 'colour');
    return (sc.at || 'in ' + sc.in) + (sc.in ? '' : ', ' + days) + ' → ' + what + (sc.fade ? ', fade ' + sc.fade : '');
  }

  function renderSchedules() {
    const list = $('#schedule-list');
    if (!list) return;
    const shown = auto.schedules.filter((sc) => sc.id !== SLEEP_ID);
    list.replaceChildren(...shown.map((sc) => {
      const li = document.createElement('li');
      li.className = 'schedule';
      li.dataset.schedule = sc.id;
      const open = document.createElement('button');
      open.type = 'button';
      open.className = 'schedule-open';
      const name = document.createElement('b');
      name.textContent = sc.name;
      const next = document.createElement('span');
      next.className = 'schedule-next';
      next.dataset.next = sc.next_run || '';
      next.textContent = sc.enabled ? nextInWords(sc.next_run) : 'off';
      const desc = document.createElement('span');
      desc.className = 'muted small';
      desc.textContent = describeSchedule(sc);
      open.append(name, next, desc);
      const toggle = document.createElement('input');
      toggle.type = 'checkbox';
      toggle.className = 'switch';
      toggle.checked = sc.enabled;
      toggle.setAttribute('aria-label', (sc.enabled ? 'Switch off ' : 'Switch on ') + sc.name);
      li.append(open, toggle);
      return li;
    }));
    $('#schedules-empty').hidden = shown.length > 0;
    tickSleep();
  }

  function tickSchedules() {
    if (!$('#schedules')) return;
    $$('.schedule-next').forEach((el) => {
      if (el.dataset.next) setText(el, nextInWords(el.dataset.next));
    });
    tickSleep();
    // A schedule that ran has a new next run (or, a timer, is gone).
    if (auto.schedules.some((sc) => sc.next_run && Date.parse(sc.next_run) < serverNow() - 2000)) reloadSchedules();
  }

  function tickSleep() {
    const t = auto.schedules.find((sc) => sc.id === SLEEP_ID);
    const left = $('#sleep-left');
    if (!left) return;
    left.hidden = !t;
    $('#sleep-cancel').hidden = !t;
    if (t && t.next_run) setText(left, 'Off in ' + humanDuration(Date.parse(t.next_run) + SLEEP_FADE_MIN * 60000 - serverNow()));
  }

  // A schedule as the API takes it, without the read-only next_run.
  function scheduleBody(sc) {
    const b = Object.assign({}, sc);
    delete b.next_run;
    return b;
  }

  function openEditor(sc) {
    const dlg = $('#schedule-editor');
    const f = $('#schedule-form');
    auto.editId = sc ? sc.id : null;
    f.reset();
    $('#editor-error').hidden = true;
    $('#editor-delete').hidden = !sc;
    if (sc) {
      f.name.value = sc.name;
      const sun = /^(sunrise|sunset)(?:([+-])(?:(\d+)h)?(?:(\d+)m)?)?$/.exec(sc.at || '');
      if (sun) {
        f.querySelector('input[name="when"][value="' + sun[1] + '"]').checked = true;
        const mins = (Number(sun[3] || 0) * 60 + Number(sun[4] || 0)) * (sun[2] === '-' ? -1 : 1);
        f.offset.value = String(mins);
      } else if (sc.at) {
        f.time.value = sc.at;
      }
      $$('input[name="days"]', f).forEach((c) => { c.checked = (sc.days || []).includes(c.value); });
      if (sc.do.scene) { f.do.value = 'scene'; f.scene.value = sc.do.scene; }
      else {
        f.do.value = sc.do.state.mode || 'manual';
        if (sc.do.state.color) f.color.value = sc.do.state.color;
      }
      const fm = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(sc.fade || '');
      f.fade.value = fm ? String(Number(fm[1] || 0) * 60 + Number(fm[2] || 0)) : '0';
      f.lamps.value = (sc.lamps || []).join(', ');
    }
    syncEditor();
    if (dlg.showModal) dlg.showModal(); else dlg.setAttribute('open', '');
    f.name.focus();
  }

  function syncEditor() {
    const f = $('#schedule-form');
    const when = f.querySelector('input[name="when"]:checked').value;
    f.querySelector('[data-when="time"]').hidden = when !== 'time';
    f.querySelector('[data-when="sun"]').hidden = when === 'time';
    f.querySelector('[data-do="manual"]').hidden = f.do.value !== 'manual';
    f.querySelector('[data-do="scene"]').hidden = f.do.value !== 'scene';
  }

  function editorSchedule() {
    const f = $('#schedule-form');
    const when = f.querySelector('input[name="when"]:checked').value;
    let at = f.time.value;
    if (when !== 'time') {
      const off = Math.round(Number(f.offset.value) || 0);
      at = when + (off ? (off < 0 ? '-' : '+') + Math.abs(off) + 'm' : '');
    }
    const sc = { name: f.name.value.trim(), at, days: $$('input[name="days"]:checked', f).map((c) => c.value) };
    const old = auto.schedules.find((x) => x.id === auto.editId);
    sc.enabled = old ? old.enabled : true;
    if (f.do.value === 'scene') sc.do = { scene: f.scene.value };
    else if (f.do.value === 'manual') sc.do = { state: { mode: 'manual', color: f.color.value } };
    else sc.do = { state: { mode: f.do.value } };
    const fade = Math.round(Number(f.fade.value) || 0);
    if (fade > 0) sc.fade = fade + 'm';
    const lamps = f.lamps.value.split(',').map((x) => x.trim()).filter(Boolean);
    if (lamps.length) sc.lamps = lamps;
    return sc;
  }

  function closeEditor() {
    const dlg = $('#schedule-editor');
    if (dlg.close) dlg.close(); else dlg.removeAttribute('open');
  }

  function bindAutomation() {
    if (!$('#scenes') || !$('#schedules')) return;
    $('#scene-list').addEventListener('click', async (ev) => {
      const b = ev.target.closest('[data-scene]');
      if (!b) return;
      if (longPressed) { longPressed = false; return; } // the press opened the editor
      const sc = auto.scenes.find((x) => x.id === b.dataset.scene);
      if (!sc) return;
      if (auto.editing) { editScene(sc); return; }
      try {
        await api('POST', '/api/scenes/' + encodeURIComponent(sc.id) + '/apply');
        toast(sc.name);
      } catch (e) { toast(e.message, 'error'); }
    });
    // Long-press a scene to change it, as the Edit switch does.
    let press = 0;
    let longPressed = false;
    $('#scene-list').addEventListener('pointerdown', (ev) => {
      const b = ev.target.closest('[data-scene]');
      if (!b) return;
      press = setTimeout(() => { press = 0; longPressed = true; const sc = auto.scenes.find((x) => x.id === b.dataset.scene); if (sc) editScene(sc); }, 600);
    });
    ['pointerup', 'pointerleave', 'pointercancel'].forEach((t) => $('#scene-list').addEventListener(t, () => {
      if (press) { clearTimeout(press); press = 0; }
    }));
    $('#scene-edit').addEventListener('click', () => {
      auto.editing = !auto.editing;
      $('#scene-edit').setAttribute('aria-pressed', String(auto.editing));
      if (auto.editing) toast('Tap a scene to rename or delete it');
    });
    $('#scene-save').addEventListener('click', async () => {
      const name = prompt('Name of the new scene (it keeps what the lamps show now)', '');
      if (!name) return;
      try {
        const sc = await api('POST', '/api/scenes', { name, from_current: true });
        toast('Saved ' + sc.name);
        reloadScenes();
      } catch (e) { toast(e.message, 'error'); }
    });
    $$('[data-sleep]').forEach((b) => b.addEventListener('click', async () => {
      const mins = Number(b.dataset.sleep);
      try {
        await api('PUT', '/api/schedules/' + SLEEP_ID, { name: 'Sleep timer', in: (mins - SLEEP_FADE_MIN) + 'm', fade: SLEEP_FADE_MIN + 'm', do: { state: { mode: 'off' } } });
        reloadSchedules();
      } catch (e) { toast(e.message, 'error'); }
    }));
    $('#sleep-cancel').addEventListener('click', async () => {
      try { await api('DELETE', '/api/schedules/' + SLEEP_ID); } catch (e) { toast(e.message, 'error'); }
      reloadSchedules();
    });

    $('#schedule-add').addEventListener('click', () => openEditor(null));
    $('#schedule-list').addEventListener('click', (ev) => {
      const li = ev.target.closest('[data-schedule]');
      if (!li || ev.target.classList.contains('switch')) return;
      openEditor(auto.schedules.find((x) => x.id === li.dataset.schedule));
    });
    $('#schedule-list').addEventListener('change', async (ev) => {
      if (!ev.target.classList.contains('switch')) return;
      const sc = auto.schedules.find((x) => x.id === ev.target.closest('[data-schedule]').dataset.schedule);
      if (!sc) return;
      try {
        await api('PUT', '/api/schedules/' + encodeURIComponent(sc.id), Object.assign(scheduleBody(sc), { enabled: ev.target.checked }));
      } catch (e) { toast(e.message, 'error'); }
      reloadSchedules();
    });
    const f = $('#schedule-form');
    f.addEventListener('change', syncEditor);
    f.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const sc = editorSchedule();
      try {
        if (auto.editId) await api('PUT', '/api/schedules/' + encodeURIComponent(auto.editId), sc);
        else await api('POST', '/api/schedules', sc);
        closeEditor();
        reloadSchedules();
      } catch (e) {
        const err = $('#editor-error');
        err.textContent = e.message;
        err.hidden = false;
      }
    });
    $('#editor-cancel').addEventListener('click', closeEditor);
    $('#editor-delete').addEventListener('click', async () => {
      if (!auto.editId || !confirm('Delete this schedule?')) return;
      try { await api('DELETE', '/api/schedules/' + encodeURIComponent(auto.editId)); } catch (e) { toast(e.message, 'error'); }
      closeEditor();
      reloadSchedules();
    });
  }

  // editScene renames or deletes a scene; its set-up stays as saved.
  async function editScene(sc) {
    const name = prompt('Rename "' + sc.name + '" (empty the name to delete the scene)', sc.name);
    if (name === null) return;
    try {
      if (name.trim() === '') {
        if (!confirm('Delete the scene "' + sc.name + '"?')) return;
        await api('DELETE', '/api/scenes/' + encodeURIComponent(sc.id));
      } else {
        await api('PUT', '/api/scenes/' + encodeURIComponent(sc.id), { name: name.trim(), shared: sc.shared, lamps: sc.lamps });
      }
    } catch (e) { toast(e.message, 'error'); }
    reloadScenes();
  }

  // ---------- start ----------

  app.devices = new Map((boot.devices || []).map((d) => [d.id, d]));
  app.lamps = new Map((boot.lamps || []).map((l) => [l.id, l]));
  applyState(boot.state);
  renderFavorites((boot.favorites && boot.favorites.colors) || []);
  applyWeather(boot.weather);
  applyFirmware(boot.firmware);
  renderDevices();
  renderLamps();
  if ($('#scenes')) {
    bindAutomation();
    reloadScenes().then(reloadSchedules);
  }
  logBox.scrollTop = logBox.scrollHeight;
  connect();
})();
