/* The inspector portal's pages: on-site checks by camera, photos or typed code, one after another,
   each kept on the server with its verdict; offline, codes are checked on the phone against the
   cached trust list (offline-verify.js) and the checks wait in localStorage until the connection
   is back. A service worker (sw.js) keeps the pages, their scripts and the trust list for offline
   use. Every page also works without this file (plain form posts).

   Storage (localStorage, this origin only):
     inspector.trustList  the signed trust list as fetched (checked again with the pinned authority
                          key every time it is loaded)
     inspector.queue      checks made offline: [{id, url, inspection, code, result, checked_at}]
                          (url null and inspection "local:ID" for one started offline, until sent)
     inspector.started    inspections started offline: [{id, place, lat, lon, started_at}], sent
                          (before their checks) once the network is back */
import * as ov from './offline-verify.js';

var doc = document;
var TRUST_KEY = 'inspector.trustList';
var QUEUE_KEY = 'inspector.queue';
var STARTED_KEY = 'inspector.started';
var SW_URL = '/portal/inspector/sw.js';
var SW_CACHE = 'inspector-v1';
var FRAME_INTERVAL = 600, FRAME_SIDE = 1280;

function $(id) { return doc.getElementById(id); }
function csrfToken() { var m = doc.querySelector('meta[name=csrf-token]'); return m ? m.getAttribute('content') : ''; }
function fill(template, values) {
  return String(template).replace(/\{(\w+)\}/g, function (_, k) { return values[k] === undefined ? '' : values[k]; });
}
function nowIso() { return new Date().toISOString().replace(/\.\d+Z$/, 'Z'); }
function randomId() { return Array.from(crypto.getRandomValues(new Uint8Array(8)), function (b) { return b.toString(16).padStart(2, '0'); }).join(''); }
function startedOffline() { try { return JSON.parse(localStorage.getItem(STARTED_KEY) || '[]'); } catch (e) { return []; } }
function saveStarted(items) { localStorage.setItem(STARTED_KEY, JSON.stringify(items)); }
function localTime(iso) {
  /* In Vietnam's time as the server writes it (the inspector_time filter): dd/MM/yyyy HH:mm on a
     Vietnamese page, "8 Dec 2026 03:21" on an English one (where 08/12 reads as 12 August). */
  var english = doc.documentElement.lang === 'en';
  try {
    var parts = {};
    new Intl.DateTimeFormat('en-US', { timeZone: 'Asia/Ho_Chi_Minh', year: 'numeric',
      month: english ? 'short' : '2-digit', day: english ? 'numeric' : '2-digit', hour: '2-digit',
      minute: '2-digit', hourCycle: 'h23' })
      .formatToParts(new Date(iso)).forEach(function (p) { parts[p.type] = p.value; });
    var time = parts.hour + ':' + parts.minute;
    return english ? parts.day + ' ' + parts.month + ' ' + parts.year + ' ' + time
                   : parts.day + '/' + parts.month + '/' + parts.year + ' ' + time;
  } catch (e) { return iso; }
}
/* Whether a kept inspection or check was made while the phone was logged in as someone else than
   `me` (what was kept before they carried a name is taken as the user's own). */
function byOther(item, me) { return Boolean(item.by) && item.by !== me; }
function shownName(by) { return String(by).replace(/^user:/, ''); }
function el(tag, className, text) {
  var node = doc.createElement(tag);
  if (className) { node.className = className; }
  if (text !== undefined && text !== null) { node.textContent = text; }
  return node;
}

/* ------------------------------------------------------------------ service worker, logout */
if ('serviceWorker' in navigator) {
  navigator.serviceWorker.register(SW_URL, { scope: '/portal/inspector/' }).catch(function () {});
}
var logout = doc.querySelector('form.logout');
if (logout && window.caches) {
  /* Pages of a logged-in inspector are not left in the cache after logging out (waiting checks stay). */
  logout.addEventListener('submit', function () { caches.delete(SW_CACHE); localStorage.removeItem(TRUST_KEY); });
}

/* ------------------------------------------------------------------ home: position */
var gps = $('gps');
if (gps && navigator.geolocation) {
  var gpsText = $('gps-messages').dataset;
  gps.hidden = false;
  gps.addEventListener('click', function () {
    $('gps-status').textContent = gpsText.asking;
    navigator.geolocation.getCurrentPosition(function (pos) {
      $('lat').value = pos.coords.latitude.toFixed(5);
      $('lon').value = pos.coords.longitude.toFixed(5);
      $('gps-status').textContent = gpsText.ok;
    }, function () { $('gps-status').textContent = gpsText.failed; }, { timeout: 15000, maximumAge: 60000 });
  });
}

/* ------------------------------------------------------------------ home: starting with no network */
var openForm = $('open-form');
if (openForm && openForm.dataset.offlinePage) {
  openForm.addEventListener('submit', function (event) {
    if (navigator.onLine) { return; }            /* the registry starts it, as without this script */
    /* No network: the phone starts it, and keeps it with its checks until the network is back. */
    event.preventDefault();
    var item = { id: randomId(), place: $('place').value.trim().slice(0, 300), lat: $('lat').value,
                 lon: $('lon').value, started_at: nowIso(), by: openForm.dataset.user };
    var items = startedOffline();
    items.push(item);
    saveStarted(items);
    location.href = openForm.dataset.offlinePage + '#' + item.id;
  });
  var waitingList = $('started-list');
  startedOffline().forEach(function (item) {
    var row = el('li');
    if (byOther(item, openForm.dataset.user)) {
      /* another inspector's, on this phone: theirs to go on with and to send */
      row.appendChild(el('strong', '', item.place || waitingList.dataset.untitled));
      row.appendChild(el('span', 'small', ' ' + fill(waitingList.dataset.other, { name: shownName(item.by) })));
    } else {
      var link = el('a', '', item.place || waitingList.dataset.untitled);
      link.href = openForm.dataset.offlinePage + '#' + item.id;
      row.appendChild(link);
    }
    row.appendChild(el('span', 'small', ' ' + localTime(item.started_at)));
    waitingList.appendChild(row);
  });
  $('started-offline').hidden = !waitingList.children.length;
  /* They are sent from here too, once the network is back: the inspector need not open each one.
     Sent, they are the registry's, listed below after a reload. */
  var homeData = $('inspector-home-data');
  if (homeData && waitingList.children.length) {
    var sentHere = false;
    var homeSender = sender(JSON.parse(homeData.textContent), {
      say: function (text) { $('started-status').textContent = text || ''; },
      startedSent: function () { sentHere = true; },
      done: function (why) {
        $('started-status').textContent = why || '';
        if (sentHere) { location.reload(); }
      }
    });
    window.addEventListener('online', function () { homeSender.sync(); });
    setInterval(homeSender.sync, 30000);
    homeSender.sync();
  }
}

/* ------------------------------------------------------------------ sending what waits on this phone */
function queue() { try { return JSON.parse(localStorage.getItem(QUEUE_KEY) || '[]'); } catch (e) { return []; } }
function saveQueue(items) { localStorage.setItem(QUEUE_KEY, JSON.stringify(items)); }

/* Sends the inspections started offline, then the checks waiting on this phone, for the inspection
   page and the home page alike. ``data``: {urls: {open, offline}, user, ui, texts} as the pages
   give them (``user`` is read afresh before sending). ``hooks``, each optional: say(text) while
   sending; startedSent(item, answer body); kept(item, answer) and refused(item, answer) for each
   check; done(why) at the end, why being what stopped it ('' when nothing did). */
function sender(data, hooks) {
  var ui = data.ui, texts = data.texts, syncing = false;
  function call(name) {
    if (hooks[name]) { hooks[name].apply(null, Array.prototype.slice.call(arguments, 1)); }
  }

  async function freshToken() {
    /* The CSRF token of a page kept open or offline goes stale when the session changes (a new
       login, in this tab or another): read the one the server serves now, and whom the phone is
       logged in as now (a page the service worker kept may be another's), on the page every
       inspector may open. */
    var page = await fetch(data.urls.offline, { credentials: 'same-origin', cache: 'no-store' });
    if (page.redirected) { return false; }          /* to the login page: the session has ended */
    var fresh = new DOMParser().parseFromString(await page.text(), 'text/html');
    var meta = fresh.querySelector('meta[name=csrf-token]'), node = fresh.getElementById('inspector-data');
    if (meta) { doc.querySelector('meta[name=csrf-token]').setAttribute('content', meta.getAttribute('content')); }
    if (node) { try { data.user = JSON.parse(node.textContent).user; } catch (e) { /* kept as it was */ } }
    return true;
  }

  async function post(url, body, retried) {
    var isForm = body instanceof FormData;
    var response = await fetch(url, {
      method: 'POST', credentials: 'same-origin', body: isForm ? body : JSON.stringify(body),
      headers: Object.assign({ 'Accept': 'application/json', 'X-CSRFToken': csrfToken() },
                             isForm ? {} : { 'Content-Type': 'application/json' })
    });
    var json = (response.headers.get('Content-Type') || '').indexOf('application/json') === 0;
    if (response.redirected || (response.ok && !json)) { return { login: true }; }
    if (response.status === 400 && !retried) {
      /* A stale CSRF token (answered as JSON or as a page): fetch a fresh one, try once more. */
      if (!(await freshToken())) { return { login: true }; }
      return post(url, body, true);
    }
    return { status: response.status, body: json ? await response.json() : null };
  }

  function errorCode(answer) { return ((answer.body && answer.body.error) || {}).code; }

  function errorText(answer) {
    var code = errorCode(answer);
    if (texts.error[code]) { return texts.error[code]; }
    if (answer.status === 400 || answer.status === 401) { return ui.stale; }
    if (answer.status === 403) { return ui.other_account; }
    if (answer.status === 429) { return ui.busy; }
    return fill(ui.unexpected, { status: answer.status });
  }

  /* What sending a waiting check came to: 'kept'; 'refused' (the registry will never keep this
     check: drop it, saying why); 'stop' (nothing can be sent now: keep them all, say why);
     'wait' (keep this one, try the next). */
  function outcome(answer) {
    if (answer.login) { return 'stop'; }
    var s = answer.status;
    if (s === 200 || s === 201) { return 'kept'; }
    if (s === 409 || (s === 422 && texts.error[errorCode(answer)])) { return 'refused'; }
    if (s === 400 || s === 401 || s === 403 || s === 429 || s >= 500) { return 'stop'; }
    return 'wait';
  }

  function somethingToSend() { return queue().length || startedOffline().length; }

  function sync() {
    if (syncing || !navigator.onLine || !somethingToSend()) { return Promise.resolve(); }
    /* One tab at a time sends the queue (every open inspection tab runs this); the server also
       keeps a check sent twice once, by its queue id. */
    if (navigator.locks) { return navigator.locks.request('inspector-sync', sendQueue); }
    return sendQueue();
  }

  async function sendStarted() {
    /* Inspections started offline go first: their checks wait for the address the registry gives
       them. Answers '' when all are sent, else why not (null: no network yet). */
    var why = '';
    for (var item of startedOffline()) {
      var answer;
      try {
        /* `by`: whom the phone was logged in as when it was started; the registry keeps it for
           them alone, so that another inspector logged in on this phone since does not send it */
        answer = await post(data.urls.open, { offline: true, id: item.id, place: item.place, lat: item.lat,
                                              lon: item.lon, started_at: item.started_at, by: item.by });
      } catch (e) { return null; }
      if (answer.login) { return ui.login; }
      if (errorCode(answer) === 'OTHER_INSPECTOR') {   /* kept here for them; this user's go on */
        why = fill(ui.other_inspector, { name: shownName(item.by) });
        continue;
      }
      if (answer.status !== 201) { return errorText(answer); }   /* kept here, with its checks, to try again */
      var body = answer.body;
      saveQueue(queue().map(function (q) {
        return q.inspection === 'local:' + item.id ? Object.assign(q, { inspection: body.id, url: body.check_url }) : q;
      }));
      saveStarted(startedOffline().filter(function (other) { return other.id !== item.id; }));
      call('startedSent', item, body);
    }
    return why;
  }

  async function sendQueue() {
    if (syncing || !navigator.onLine || !somethingToSend()) { return; }
    syncing = true;
    call('say', ui.sending);
    var why = '';
    try {
      try {
        if (!(await freshToken())) { why = ui.login; return; }
      } catch (e) { return; }                    /* still no network: try again later */
      why = await sendStarted();
      if (why === null) { why = ''; return; }   /* still no network: try again later */
      for (var item of queue()) {
        var answer;
        if (!item.url) { continue; }      /* its inspection, started offline, is not sent yet */
        if (byOther(item, data.user)) {   /* made while another inspector was logged in: theirs to send */
          why = fill(ui.other_checks, { name: shownName(item.by) });
          continue;
        }
        try {
          answer = await post(item.url, { offline: true, id: item.id, code: item.code, result: item.result,
                                          checked_at: item.checked_at });
        } catch (e) { break; }            /* still no network: try again later */
        var done = outcome(answer);
        if (done === 'stop') {
          why = answer.login ? ui.login : answer.status >= 500 ? '' : errorText(answer);
          break;
        }
        if (done === 'wait') { why = errorText(answer); continue; }
        saveQueue(queue().filter(function (q) { return q.id !== item.id; }));
        call(done === 'kept' ? 'kept' : 'refused', item, answer);
      }
    } finally {
      syncing = false;
      call('done', why);
    }
  }

  return { sync: sync, post: post, errorCode: errorCode, errorText: errorText };
}

/* ------------------------------------------------------------------ inspection page */
var dataNode = $('inspector-data');
if (dataNode) { inspectionPage(JSON.parse(dataNode.textContent)); }

function inspectionPage(data) {
  var ui = data.ui, texts = data.texts;
  var list = $('checks'), latest = $('latest'), scanStatus = $('scan-status');
  var trust = null, syncNote = '';

  function say(text) { if (scanStatus) { scanStatus.textContent = text || ''; } }

  /* An inspection started offline (data.local): this phone keeps it, under the id after '#', until
     it is sent; its checks wait with it, and once it is sent its own page opens. */
  var started = null, movedTo = null;
  if (data.local) {
    var localId = location.hash.slice(1);
    started = startedOffline().filter(function (item) { return item.id === localId; })[0] || null;
    if (started) {
      data.inspection = 'local:' + started.id;
      if (started.place) { $('local-place').textContent = started.place; doc.title = started.place; }
      $('local-started').textContent = fill(ui.local_started, { when: localTime(started.started_at) });
    } else {
      $('checker').hidden = true;
      $('local-notice').textContent = ui.local_missing;
    }
  }

  /* Sending what waits here: the rows of this inspection's checks follow what became of them. */
  var send = sender(data, {
    say: say,
    startedSent: function (item, body) { if (started && started.id === item.id) { movedTo = body.url; } },
    kept: function (item, answer) {
      if (item.inspection !== data.inspection) { return; }
      var kept = answer.body.checks[0], fresh = checkItem(kept);
      var row = list.querySelector('[data-queue-id="' + item.id + '"]');
      if (row) { row.replaceWith(fresh); } else { list.insertBefore(fresh, list.firstChild); }
      if (latest && latest.dataset.queueId === item.id) { showLatest(kept); }  /* it had kept the offline one */
    },
    refused: function (item, answer) {
      var row = list.querySelector('[data-queue-id="' + item.id + '"]');
      if (row) { row.replaceWith(checkItem(Object.assign(pendingView(item), { error: errorText(answer) }), 'rejected')); }
    },
    done: function (why) {
      syncNote = why;
      recount();
      keepPageFresh();
      say(why);
      showNet();
      if (movedTo) { location.replace(movedTo); }   /* the inspection's own page, with its checks */
    }
  });
  var post = send.post, errorText = send.errorText, sync = send.sync;

  /* -------------------------------------------------------------- rendering (as _check.html) */

  function checkItem(c, state) {
    var li = el('li', 'check v-' + c.verdict + (state ? ' ' + state : ''));
    li.dataset.verdict = c.verdict;
    if (c.id) { li.dataset.checkId = c.id; }
    if (c.queueId) { li.dataset.queueId = c.queueId; }
    var head = el('div', 'check-head');
    head.appendChild(el('strong', 'check-verdict', texts.verdict[c.verdict] || c.verdict));
    var time = el('time', 'check-time', localTime(c.at));
    time.setAttribute('datetime', c.at);
    head.appendChild(time);
    li.appendChild(head);
    var code = c.code || {};
    var named = c.product || (c.producer ? fill(ui.producer, { name: c.producer }) : '');
    if (named || code.gtin) {
      var p = el('p', 'check-code');
      if (named) { p.appendChild(doc.createTextNode(named)); p.appendChild(el('br')); }
      p.appendChild(el('span', 'mono', [code.gtin, code.lot, code.serial].filter(Boolean).join(' · ')));
      li.appendChild(p);
    }
    if ((c.facts || []).length) {
      var facts = el('ul', 'check-facts');
      c.facts.forEach(function (fact) { facts.appendChild(el('li', '', String(fact))); });
      li.appendChild(facts);
    }
    if ((c.reasons || []).length || (c.notes || []).length) {
      var ul = el('ul', 'check-why');
      (c.reasons || []).forEach(function (r) { ul.appendChild(el('li', '', texts.reason[r] || r)); });
      (c.notes || []).forEach(function (r) { ul.appendChild(el('li', 'note', texts.reason[r] || r)); });
      li.appendChild(ul);
    }
    var tags = el('p', 'check-tags');
    if (c.offline) {
      var label = ui.offline_check;
      if (c.offline_verdict && c.offline_verdict !== c.verdict) { label += ' (' + (texts.verdict[c.offline_verdict] || c.offline_verdict) + ')'; }
      tags.appendChild(el('span', 'badge badge-offline', label));
    }
    if (c.photo) { var link = photoLink(c.id); if (link) { tags.appendChild(link); } }
    if (state === 'pending') { tags.appendChild(el('span', 'badge badge-pending', ui.pending)); }
    if (state === 'rejected') { tags.appendChild(el('span', 'badge badge-revoked', ui.rejected + (c.error ? ': ' + c.error : ''))); }
    li.appendChild(tags);
    return li;
  }

  function photoLink(checkId) {
    /* The photo route (inspection_photo) is the check URL, the check's id and /photo: built from a
       number only, so that nothing the server sent can turn into another address. */
    var id = Number(checkId);
    if (!Number.isSafeInteger(id) || id <= 0) { return null; }
    var a = el('a', 'badge badge-photo', ui.photo);
    a.href = data.urls.check + '/' + id + '/photo';
    a.target = '_blank';
    a.rel = 'noopener';
    return a;
  }

  function showLatest(c) {
    if (!latest) { return; }
    latest.replaceChildren();
    latest.dataset.queueId = c.queueId || '';   /* an offline check's: the server's verdict replaces it once sent */
    var box = el('div', 'verdict v-' + c.verdict);
    box.dataset.verdict = c.verdict;
    box.appendChild(el('p', 'verdict-word', texts.verdict[c.verdict] || c.verdict));
    var code = c.code || {};
    var named = c.product || (c.producer ? fill(ui.producer, { name: c.producer }) : '');
    var line = [named, [code.gtin, code.lot, code.serial].filter(Boolean).join(' · ')].filter(Boolean).join(' — ');
    if (line) { box.appendChild(el('p', 'latest-code', line)); }
    var first = (c.reasons || [])[0] || (c.offline ? 'OFFLINE_NO_RECALLS' : null);
    if (first) { box.appendChild(el('p', 'latest-why', texts.reason[first] || first)); }
    if (c.offline) { box.appendChild(el('p', 'latest-why', ui.offline_check)); }
    latest.appendChild(box);
    latest.hidden = false;
  }

  function recount() {
    /* every check on the page, stored or waiting to be sent; not the ones the server refused */
    $('check-count').textContent = String(list.querySelectorAll('li.check:not(.rejected)').length);
  }

  var freshTimer = null;
  function keepPageFresh() {
    /* The service worker keeps this page as it was last loaded; checks stored since then would be
       missing from it after a reload with no network. Store the page as it is now: once, a moment
       after the last of a run of checks (five photos are five checks, not five page loads). */
    if (!window.caches) { return; }
    clearTimeout(freshTimer);
    freshTimer = setTimeout(function () {
      if (!navigator.onLine) { return; }
      var here = location.href;
      fetch(here, { credentials: 'same-origin' }).then(function (response) {
        if (!response.ok || response.redirected) { return; }
        return caches.open(SW_CACHE).then(function (cache) { return cache.put(here, response); });
      }).catch(function () {});
    }, 1500);
  }

  function addRow(c, state) {
    var row = checkItem(c, state);
    list.insertBefore(row, list.firstChild);
    $('no-checks').hidden = true;
    recount();
    showLatest(c);
    if (state !== 'pending') { keepPageFresh(); }
    return row;
  }

  /* -------------------------------------------------------------- network state, trust list */
  function showNet() {
    $('net').hidden = false;
    $('net').classList.toggle('is-offline', !navigator.onLine);
    $('net-state').textContent = navigator.onLine ? ui.online : ui.offline;
    $('trust-state').textContent = trust ? fill(ui.trust, { when: localTime(trust.issuedAt) }) : ui.no_trust;
    var waiting = queue().length;
    $('queue-state').textContent = waiting ? [fill(ui.queued, { n: waiting }), syncNote].filter(Boolean).join(' ') : '';
  }

  async function loadStoredTrust() {
    var stored = localStorage.getItem(TRUST_KEY);
    if (!stored) { return null; }
    try { return await ov.loadTrustList(JSON.parse(stored), data.authority_key); } catch (e) { return null; }
  }

  async function refreshTrust() {
    /* With no network too: the service worker answers with the list it keeps, which a phone that
       has only seen the home page (an inspection started offline) has in no other place. */
    try {
      var response = await fetch(data.urls.trust_list, { credentials: 'same-origin', cache: 'no-store' });
      if (response.ok) {
        var body = await response.json();
        trust = await ov.loadTrustList(body, data.authority_key);
        localStorage.setItem(TRUST_KEY, JSON.stringify(body));
        showNet();
        return;
      }
    } catch (e) { /* no network and none kept, or a list that does not verify: keep the stored one */ }
    trust = (await loadStoredTrust()) || trust;
    showNet();
  }

  /* -------------------------------------------------------------- the offline queue */

  async function checkOffline(text) {
    var result;
    if (trust) {
      result = await ov.verifyOffline(text, trust);
    } else {
      say(await ov.supportsEd25519() ? ui.no_trust : ui.no_crypto);
      result = { verdict: 'unverifiable', reasons: [], notes: [{ code: 'OFFLINE_NO_RECALLS' }], code: null, offline: true };
    }
    var item = { id: randomId(), url: data.urls.check, inspection: data.inspection, code: text, result: result,
                 checked_at: nowIso(), by: started ? started.by : data.user };
    var items = queue();
    items.push(item);
    saveQueue(items);
    addRow(pendingView(item), 'pending');
    showNet();
    return result;
  }

  function pendingView(item) {
    var r = item.result;
    return { queueId: item.id, at: item.checked_at, verdict: r.verdict, offline: true, code: r.code || {},
             /* the trust list names producers, not products: say whose key signed it, as such */
             product: r.product ? r.product.name : null, producer: r.producer ? r.producer.name : null,
             /* UNSIGNED_CODE for a signed code: its key is newer than the cached trust list */
             reasons: (r.reasons || []).map(function (x) {
               return x.code === 'UNSIGNED_CODE' && r.code && r.code.signed ? 'KEY_NOT_IN_TRUST_LIST' : x.code;
             }),
             notes: (r.notes || []).map(function (x) { return x.code; }) };
  }

  async function reloadChecks() {
    /* Another tab sent checks this one shows as waiting: show the list as the server has it now,
       with the checks still waiting here on top. */
    try {
      var page = await fetch(data.urls.page, { credentials: 'same-origin', cache: 'no-store' });
      if (!page.ok || page.redirected) { return; }
      var fresh = new DOMParser().parseFromString(await page.text(), 'text/html').getElementById('checks');
      if (!fresh) { return; }
      list.replaceChildren.apply(list, Array.from(fresh.children, function (n) { return doc.importNode(n, true); }));
      showQueued();
      recount();
    } catch (e) { /* offline again: the rows stay as they are */ }
  }

  var reloadTimer = null;
  window.addEventListener('storage', function (event) {
    if (event.key !== QUEUE_KEY) { return; }
    showNet();
    var waiting = queue().map(function (q) { return q.id; });
    var gone = Array.from(list.querySelectorAll('li.check.pending')).some(function (row) {
      return waiting.indexOf(row.dataset.queueId) < 0;
    });
    if (gone) { clearTimeout(reloadTimer); reloadTimer = setTimeout(reloadChecks, 300); }
  });

  /* -------------------------------------------------------------- checking */
  async function checkCode(text) {
    text = String(text || '').trim();
    if (!text) { return; }
    say(ui.checking);
    if (navigator.onLine && !data.local) {
      try {
        var answer = await post(data.urls.check, { code: text });
        if (!answer.login && answer.status < 500) {
          say('');
          if (answer.status === 201) { answer.body.checks.forEach(function (c) { addRow(c); }); }
          else { say(fill(ui.failed, { why: errorText(answer) })); }
          return;
        }
        if (answer.login) { say(ui.login); }
      } catch (e) { /* the network is gone: check here */ }
    }
    await checkOffline(text);
    if (!navigator.onLine) { say(''); }
  }

  var detectorReady = ('BarcodeDetector' in window && window.BarcodeDetector.getSupportedFormats)
    ? window.BarcodeDetector.getSupportedFormats().then(function (formats) {
        var wanted = ['qr_code', 'data_matrix', 'ean_13', 'ean_8', 'upc_a', 'upc_e', 'code_128'];
        var usable = wanted.filter(function (f) { return formats.indexOf(f) >= 0; });
        return usable.indexOf('qr_code') >= 0 ? new window.BarcodeDetector({ formats: usable }) : null;
      }, function () { return null; })
    : Promise.resolve(null);

  async function checkPhotos(files, leftOut) {
    /* Each photo is a check of its own: one the registry refuses (not a photo, too large) is
       counted and said at the end, and the next ones are still checked. */
    var detector = await detectorReady;
    var refused = [];
    function summary() {
      var parts = [];
      if (refused.length) { parts.push(fill(ui.photos_failed, { n: refused.length, total: files.length, why: refused.join('; ') })); }
      if (leftOut) { parts.push(fill(ui.photos_left_out, { n: leftOut, max: data.max_photos })); }
      return parts.join(' ');
    }
    for (var i = 0; i < files.length; i++) {
      say(fill(ui.photo_n, { i: i + 1, n: files.length }));
      if (navigator.onLine && !data.local) {
        var form = new FormData();
        form.append('image', files[i], files[i].name || 'photo.jpg');
        try {
          var answer = await post(data.urls.check, form);
          if (answer.status === 201) { answer.body.checks.forEach(function (c) { addRow(c); }); continue; }
          if (!answer.login && answer.status < 500) {
            refused.push((files[i].name ? files[i].name + ': ' : '') + errorText(answer));
            continue;
          }
        } catch (e) { /* fall through to the phone */ }
      }
      if (!detector) { say([ui.photo_offline, summary()].filter(Boolean).join(' ')); return; }
      var codes = await detector.detect(await createImageBitmap(files[i]));
      if (!codes.length) { refused.push((files[i].name ? files[i].name + ': ' : '') + ui.no_code); continue; }
      await checkOffline(codes[0].rawValue);
    }
    say(summary());
  }

  var photos = $('photos');
  if (photos) {
    doc.documentElement.classList.add('inspector-js');
    var chosen = function () {
      var all = Array.prototype.slice.call(photos.files || []);
      return { files: all.slice(0, data.max_photos), leftOut: Math.max(0, all.length - data.max_photos) };
    };
    photos.addEventListener('change', function () {
      var pick = chosen();
      if (pick.files.length) { checkPhotos(pick.files, pick.leftOut).finally(function () { photos.value = ''; }); }
    });
    $('photo-form').addEventListener('submit', function (event) {
      event.preventDefault();
      var pick = chosen();
      if (pick.files.length) { checkPhotos(pick.files, pick.leftOut); }
    });
  }
  var codeForm = $('code-form');
  if (codeForm) {
    codeForm.addEventListener('submit', function (event) {
      event.preventDefault();
      var input = $('code');
      checkCode(input.value).then(function () { input.value = ''; input.focus(); });
    });
  }

  /* -------------------------------------------------------------- camera: one code, then "next" */
  var video = $('video'), camera = $('camera'), startButton = $('scan-start');
  var stream = null, running = false, starting = false, canvas = doc.createElement('canvas');

  function stopCamera() {
    running = false;
    if (stream) { stream.getTracks().forEach(function (t) { t.stop(); }); stream = null; }
    if (camera) { camera.hidden = true; }
    /* "Hold the code inside the frame" is only true while the camera runs: it had stayed under a
       stopped camera after a frame was kept. What comes next (checking, offline) says its own. */
    say('');
  }

  async function frameBlob() {
    var w = video.videoWidth, h = video.videoHeight;
    if (!w || !h) { return null; }
    var scale = Math.min(1, FRAME_SIDE / Math.max(w, h));
    canvas.width = Math.round(w * scale);
    canvas.height = Math.round(h * scale);
    canvas.getContext('2d').drawImage(video, 0, 0, canvas.width, canvas.height);
    return new Promise(function (resolve) { canvas.toBlob(resolve, 'image/jpeg', 0.85); });
  }

  async function scanLoop() {
    var detector = await detectorReady, checked = false;
    while (running) {
      await new Promise(function (r) { setTimeout(r, detector ? 200 : FRAME_INTERVAL); });
      if (!running || video.readyState < 2) { continue; }
      try {
        if (detector) {
          var codes = await detector.detect(video);
          if (codes.length && running) { stopCamera(); checked = true; await checkCode(codes[0].rawValue); break; }
        } else if (navigator.onLine && !data.local) {
          var blob = await frameBlob();
          if (!blob || !running) { continue; }
          var form = new FormData();
          form.append('frame', blob, 'frame.jpg');
          var answer = await post(data.urls.check, form);
          if (answer.status === 201 && running) {
            stopCamera();
            checked = true;
            answer.body.checks.forEach(function (c) { addRow(c); });
            break;
          }
        } else {
          stopCamera();
          say(ui.photo_offline);
          break;
        }
      } catch (e) { await new Promise(function (r) { setTimeout(r, 1500); }); }
    }
    if (startButton) { startButton.textContent = checked ? ui.next : ui.scan; }  /* stopped by hand: as it was */
  }

  function startCamera() {
    starting = true;
    say(ui.starting);
    navigator.mediaDevices.getUserMedia({
      audio: false, video: { facingMode: { ideal: 'environment' }, width: { ideal: 1280 }, height: { ideal: 720 } }
    }).then(function (s) {
      var wanted = starting;
      starting = false;
      /* Stopped while the browser asked, or the page hidden meanwhile: a camera must not run unseen. */
      if (!wanted || doc.hidden) { s.getTracks().forEach(function (t) { t.stop(); }); say(''); return; }
      stream = s;
      video.srcObject = s;
      camera.hidden = false;
      var played = video.play();
      if (played && played.catch) { played.catch(function () {}); }
      running = true;
      say(ui.scanning);
      startButton.textContent = ui.stop;
      scanLoop();
    }, function (err) {
      starting = false;
      var denied = err && (err.name === 'NotAllowedError' || err.name === 'SecurityError');
      say(denied ? ui.denied : ui.nocamera);
    });
  }

  if (startButton && navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
    $('scan-actions').hidden = false;
    /* One button: it starts the camera, and stops it while it runs or is starting. */
    startButton.addEventListener('click', function () {
      if (running || starting) { starting = false; stopCamera(); } else { startCamera(); }
    });
    doc.addEventListener('visibilitychange', function () {
      if (doc.hidden && (running || starting)) { starting = false; stopCamera(); }
    });
  }

  /* -------------------------------------------------------------- start */
  function showQueued() {
    queue().filter(function (q) { return q.inspection === data.inspection; }).forEach(function (item) {
      list.insertBefore(checkItem(pendingView(item), 'pending'), list.firstChild);
    });
    $('no-checks').hidden = !!list.querySelector('li.check');
  }
  showQueued();
  recount();
  window.addEventListener('online', function () { showNet(); refreshTrust().then(sync); });
  window.addEventListener('offline', showNet);
  setInterval(sync, 30000);
  showNet();
  refreshTrust().then(sync);
}
