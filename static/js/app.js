/* The shopper's pages: a client id for every check, live camera scanning on "/", photo checks on
   the report form. No framework, no build step; every page also works without this file. */
(function () {
  'use strict';
  var doc = document;
  doc.documentElement.classList.add('js');

  function $(id) { return doc.getElementById(id); }

  /* This browser's id, as the server gave it to the page (app/pages/device.py: the same id its
     verdict pages opened from a camera app use); the server stores only a salted hash of it. */
  var idInput = doc.querySelector('input[name=client_id]');
  var clientId = idInput ? idInput.value : '';

  var csrfMeta = doc.querySelector('meta[name=csrf-token]');
  var csrfToken = csrfMeta ? csrfMeta.getAttribute('content') : '';

  /* Switching the language reloads the page: what was typed in ``form`` goes along in this tab's
     sessionStorage under ``key``, and comes back once (not the photos: a file input is the user's to
     fill). What the server sent back wins over it. ``answerId``: the element of an answer the form
     had given (a report's status); shown when switching, the form is sent again in the new language. */
  function keepAcrossLanguages(form, key, answerId) {
    Array.prototype.forEach.call(doc.querySelectorAll('a[hreflang]'), function (link) {
      link.addEventListener('click', function () {
        var values = {};
        Array.prototype.forEach.call(form.elements, function (field) {
          if (!field.name || field.type === 'file' || field.type === 'hidden' || field.type === 'submit') { return; }
          if (field.type === 'radio' && !field.checked) { return; }
          values[field.name] = field.value;
        });
        var again = Boolean(answerId && $(answerId));
        try { sessionStorage.setItem(key, JSON.stringify({ values: values, again: again })); } catch (e) { /* private mode: not kept */ }
      });
    });
    var draft = null;
    try { draft = JSON.parse(sessionStorage.getItem(key) || 'null'); sessionStorage.removeItem(key); } catch (e) { draft = null; }
    if (!draft || typeof draft !== 'object' || typeof draft.values !== 'object') { return; }
    var values = draft.values;
    Array.prototype.forEach.call(form.elements, function (field) {
      if (!field.name || !(field.name in values) || field.type === 'file' || field.type === 'hidden') { return; }
      if (field.type === 'radio') { field.checked = field.value === values[field.name]; }
      else if (!field.value) { field.value = String(values[field.name]); }
    });
    if (draft.again) { form.submit(); }
  }

  /* ------------------------------------------------------------------ report form: photo checks */
  var reportForm = $('report-form');
  if (reportForm) {
    var photoInput = $('photo');
    var photoCheck = $('photo-check');
    var MAX_PHOTOS = 3, MAX_BYTES = 10 * 1024 * 1024;
    var photoProblem = function () {
      var files = photoInput.files || [];
      if (files.length > MAX_PHOTOS) { return photoCheck.dataset.count; }
      for (var i = 0; i < files.length; i++) {
        if (files[i].size > MAX_BYTES) { return photoCheck.dataset.size; }
        if (files[i].type && files[i].type.indexOf('image/') !== 0) { return photoCheck.dataset.type; }
      }
      return '';
    };
    var showProblem = function () {
      var problem = photoProblem();
      photoCheck.textContent = problem;
      photoCheck.hidden = !problem;
      return problem;
    };
    photoInput.addEventListener('change', showProblem);
    reportForm.addEventListener('submit', function (event) {
      if (showProblem()) { event.preventDefault(); photoInput.focus(); }
    });

    keepAcrossLanguages(reportForm, 'report.draft');
    /* Sent back with errors: the first field at fault has the focus (it had stayed at the top). */
    var invalid = reportForm.querySelector('[aria-invalid="true"]');
    if (invalid) {
      (invalid.tagName === 'FIELDSET' ? invalid.querySelector('input') : invalid).focus();
    }
  }

  /* The follow-up form: the case number and the code typed go along with a language switch too, and
     a report's status shown is shown again, in the new language. */
  var followupForm = $('followup-form');
  if (followupForm) { keepAcrossLanguages(followupForm, 'followup.draft', 'followup'); }

  /* ------------------------------------------------------------------ scan page */
  var scanSection = $('scan');
  if (!scanSection) { return; }
  var messages = $('messages').dataset;
  var statusLine = $('camera-status');
  var camera = $('camera');
  var video = $('video');
  var resultBox = $('result');
  var photoForm = $('photo-form');
  var photo = $('photo');
  var FRAME_INTERVAL = 400;      /* ms between frames sent to the server (about 2.5 a second) */
  var FRAME_SIDE = 960;          /* longest side of a frame sent to the server, in pixels */
  var PAUSE_AFTER = 60000;       /* stop scanning after a minute without a code */
  var stream = null, running = false, busy = false, timer = null, detector = null, startedAt = 0;
  var canvas = doc.createElement('canvas');

  function say(text) { statusLine.textContent = text || ''; }

  /* The photo form submits itself once a photo is chosen; a photo over the service's limit (a phone's
     50-200 megapixel mode) is sent smaller, as a camera frame is, instead of being refused. */
  var PHOTO_SIDE = 4096;
  var limit = (parseInt(photoForm.dataset.maxBytes, 10) || 10 * 1024 * 1024) - 64 * 1024;  /* the form's other fields */
  photo.addEventListener('change', function () {
    if (!(photo.files && photo.files.length)) { return; }
    stopCamera();
    var file = photo.files[0];
    if (file.size <= limit || !window.createImageBitmap || !window.DataTransfer) {
      photoForm.submit();
      return;
    }
    say(messages.sending);
    createImageBitmap(file).then(function (bitmap) {
      /* smaller and smaller until it fits: a photo of noise-like texture stays large at 4096 px */
      function attempt(side, quality) {
        var scale = Math.min(1, side / Math.max(bitmap.width, bitmap.height));
        var smaller = doc.createElement('canvas');
        smaller.width = Math.round(bitmap.width * scale);
        smaller.height = Math.round(bitmap.height * scale);
        smaller.getContext('2d').drawImage(bitmap, 0, 0, smaller.width, smaller.height);
        return new Promise(function (resolve) { smaller.toBlob(resolve, 'image/jpeg', quality); }).then(function (blob) {
          if (blob && blob.size > limit && side > 1024) { return attempt(Math.round(side * 0.7), 0.8); }
          return blob;
        });
      }
      return attempt(PHOTO_SIDE, 0.9);
    }).then(function (blob) {
      if (blob && blob.size <= limit) {
        var files = new DataTransfer();
        files.items.add(new File([blob], 'photo.jpg', { type: 'image/jpeg' }));
        photo.files = files.files;
      }
    }).catch(function () { /* not an image this browser opens: the service says what it is */ })
      .then(function () { photoForm.submit(); });
  });

  function stopCamera() {
    running = false;
    clearTimeout(timer);
    if (stream) { stream.getTracks().forEach(function (t) { t.stop(); }); stream = null; }
  }

  /* The camera stops once the verdict is here: when the service cannot show it, scanning goes on
     (tick's failure path) instead of leaving "Checking…" on a stopped camera. */
  function showVerdict(result, text) {
    say(messages.checking);
    return fetch('/fragment/verdict', {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-CSRFToken': csrfToken },
      body: JSON.stringify({ result: result, text: text || '' })
    }).then(function (response) {
      if (!response.ok) { throw new Error('fragment ' + response.status); }
      relinkLanguages(response.headers.get('X-Language-Next'), response.headers.get('X-Language-Shown'));
      return response.text();
    }).then(function (html) {
      stopCamera();
      resultBox.innerHTML = html;   /* server-rendered, escaped by the template */
      resultBox.hidden = false;
      scanSection.hidden = true;
      $('again').hidden = false;
      var heading = resultBox.querySelector('h1');
      if (heading) {
        heading.setAttribute('tabindex', '-1');
        heading.focus();
        /* the tab and the history say the verdict, as a verdict page's own title does */
        doc.title = heading.textContent.trim() + ' · ' + doc.title.split(' · ').pop();
      }
      window.scrollTo(0, 0);
      return true;
    });
  }

  /* The language links show this verdict again in the other language (its code's /check page,
     not counted as a new check), instead of going back to the camera. */
  function relinkLanguages(next, shown) {
    if (!next) { return; }
    Array.prototype.forEach.call(doc.querySelectorAll('a[hreflang]'), function (link) {
      var lang = link.getAttribute('hreflang');
      link.href = '/lang/' + encodeURIComponent(lang) + '?next=' + encodeURIComponent(next) +
        (shown ? '&shown=' + encodeURIComponent(shown) : '');
    });
  }

  /* The codes the phone's reader found, each checked by the API (recorded once, by it); the page
     then shows the most serious (a signed code beside a plain barcode decides), the others listed
     under it. Codes that are no product's (a shop's payment QR) are not sent again, and the camera
     goes on scanning and says so. */
  var ignored = {};

  function verifyTexts(texts) {
    return Promise.all(texts.map(function (text) {
      var url = '/api/v1/verify?code=' + encodeURIComponent(text) + '&client_id=' + encodeURIComponent(clientId);
      return fetch(url, { credentials: 'same-origin' }).then(function (response) {
        if (!response.ok) { return response; }
        return response.json().then(function (body) { body.text = text; return body; });
      });
    })).then(function (answers) {
      var refused = answers.filter(function (a) { return a instanceof Response; });
      var bodies = answers.filter(function (a) { return !(a instanceof Response); });
      if (bodies.some(function (b) { return b.verdict !== 'unreadable'; })) {
        return showVerdict({ codes: bodies }, '');
      }
      bodies.forEach(function (b) { ignored[b.text] = true; });
      if (refused.length) { return backOff(refused[0]); }
      say(messages.notproduct);
      return false;
    });
  }

  /* A check the service did not answer with a verdict: too many at once (429), the service briefly
     unable to (5xx: its database down or busy), or a code it refuses to read (longer than it reads,
     a NUL in it). Say which, wait as long as it asks (Retry-After, else 5 s; at most 30), then
     scan again: a 5xx had left "Checking…" on a stopped camera. */
  function backOff(response) {
    var status = response.status;
    var seconds = Math.min(30, parseInt(response.headers.get('Retry-After'), 10) || 5);
    say(status === 429 ? messages.busy : status >= 500 ? messages.unavailable : messages.refused);
    return new Promise(function (resolve) {
      setTimeout(function () { say(messages.scanning); resolve(false); }, seconds * 1000);
    });
  }

  function sendFrame() {
    var w = video.videoWidth, h = video.videoHeight;
    if (!w || !h) { return Promise.resolve(false); }
    var scale = Math.min(1, FRAME_SIDE / Math.max(w, h));
    canvas.width = Math.round(w * scale);
    canvas.height = Math.round(h * scale);
    canvas.getContext('2d').drawImage(video, 0, 0, canvas.width, canvas.height);
    return new Promise(function (resolve) { canvas.toBlob(resolve, 'image/jpeg', 0.8); }).then(function (blob) {
      if (!blob || !running) { return false; }
      var form = new FormData();
      form.append('image', blob, 'frame.jpg');
      form.append('client_id', clientId);
      return fetch('/api/v1/verify/image', { method: 'POST', body: form, credentials: 'same-origin' })
        .then(function (response) {
          if (response.status === 429 || response.status >= 500) { return backOff(response); }
          if (!response.ok) { return false; }   /* a frame the decoders refused: the next one */
          return response.json().then(function (body) {
            if (!body.codes || !body.codes.length || !running) { return false; }
            if (body.verdict === 'unreadable') { say(messages.notproduct); return false; }   /* no product's code */
            return showVerdict(body, '');
          });
        });
    });
  }

  function detectInBrowser() {
    return detector.detect(video).then(function (codes) {
      var texts = [];
      codes.forEach(function (code) {
        var text = code.rawValue;
        if (text && !ignored[text] && texts.indexOf(text) < 0 && texts.length < 4) { texts.push(text); }
      });
      if (!texts.length || !running) { return false; }
      say(messages.checking);
      return verifyTexts(texts);
    });
  }

  function tick() {
    if (!running) { return; }
    if (Date.now() - startedAt > PAUSE_AFTER) { pause(); return; }
    if (busy || video.readyState < 2) { timer = setTimeout(tick, 150); return; }
    busy = true;
    var attempt = detector ? detectInBrowser() : sendFrame();
    attempt.then(function (done) {
      busy = false;
      if (!done && running) { timer = setTimeout(tick, detector ? 200 : FRAME_INTERVAL); }
    }, function () {
      busy = false;   /* no answer at all (no network), or no verdict page for it */
      say(navigator.onLine ? messages.unavailable : messages.offline);
      if (running) { timer = setTimeout(tick, 2000); }
    });
  }

  function pause() {
    stopCamera();
    say(messages.paused);
  }

  function startCamera() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) { say(messages.nocamera); return; }
    say(messages.starting);
    navigator.mediaDevices.getUserMedia({
      audio: false,
      video: { facingMode: { ideal: 'environment' }, width: { ideal: 1280 }, height: { ideal: 720 } }
    }).then(function (s) {
      stream = s;
      video.srcObject = s;
      camera.hidden = false;
      var played = video.play();
      if (played && played.catch) { played.catch(function () {}); }
      running = true;
      startedAt = Date.now();
      say(messages.scanning);
      tick();
    }, function (err) {
      var denied = err && (err.name === 'NotAllowedError' || err.name === 'SecurityError');
      say(denied ? messages.denied : messages.nocamera);
    });
  }

  /* Tap the picture to scan again after a pause. */
  camera.addEventListener('click', function () { if (!running && !stream) { startCamera(); } });
  doc.addEventListener('visibilitychange', function () {
    if (doc.hidden) { if (running) { stopCamera(); } }
    else if (!stream && resultBox.hidden && camera.hidden === false) { startCamera(); }
  });

  var ready = Promise.resolve();
  if ('BarcodeDetector' in window && window.BarcodeDetector.getSupportedFormats) {
    ready = window.BarcodeDetector.getSupportedFormats().then(function (formats) {
      var wanted = ['qr_code', 'data_matrix', 'ean_13', 'ean_8', 'upc_a', 'upc_e', 'code_128'];
      var usable = wanted.filter(function (f) { return formats.indexOf(f) >= 0; });
      if (usable.indexOf('qr_code') >= 0) { detector = new window.BarcodeDetector({ formats: usable }); }
    }, function () {});
  }
  ready.then(startCamera);
})();
