/* Portal pages: ask before destructive actions (forms with data-confirm), and send a form once
   (a double click had issued 20,000 serials twice, made two API tokens and imported a CSV file
   twice, the second answer saying that nothing was imported). Every page works without it. */
(function () {
  'use strict';
  document.documentElement.classList.add('js');
  var SENDING = 'sending';
  document.addEventListener('submit', function (event) {
    var form = event.target;
    var question = form && form.getAttribute && form.getAttribute('data-confirm');
    if (question && !window.confirm(question)) { event.preventDefault(); return; }
    /* A form a page's script sends itself (it prevented the default) is its script's business. */
    if (event.defaultPrevented || !form.method || form.method.toLowerCase() !== 'post') { return; }
    if (form.classList.contains(SENDING)) { event.preventDefault(); return; }
    /* Marked, not disabled: a disabled button would not send its name and value (the case page's
       moves are buttons). Free again after a while, for a form whose answer is a download. */
    form.classList.add(SENDING);
    form.setAttribute('aria-busy', 'true');
    window.setTimeout(function () { release(form); }, 8000);
    keep(form);
  });
  function release(form) { form.classList.remove(SENDING); form.removeAttribute('aria-busy'); }
  /* Back to a page the browser kept: its forms can be sent again. */
  window.addEventListener('pageshow', function () {
    Array.prototype.forEach.call(document.querySelectorAll('form.' + SENDING), release);
  });
  /* A post refused because the session had ended (a password reset, a logout elsewhere) leads to
     the login, then back to the form's page with #unsent (app/portal/auth.py): what was typed comes
     back into that form, kept in this tab as it was sent. Any other page forgets it. */
  var UNSENT = 'portal.unsent';
  function keep(form) {
    if (form.id === 'login-form') { return; }
    var values = {};
    Array.prototype.forEach.call(form.elements, function (field) {
      if (!field.name || field.name === 'csrf_token' || field.type === 'password' || field.type === 'file' ||
          field.type === 'hidden' || field.type === 'submit' || field.type === 'checkbox' || field.type === 'radio') { return; }
      if (field.value) { values[field.name] = field.value; }
    });
    try {
      sessionStorage.setItem(UNSENT, JSON.stringify({ page: location.pathname, action: form.getAttribute('action'), values: values }));
    } catch (e) { /* private mode: not kept */ }
  }
  (function restore() {
    var kept = null;
    try { kept = JSON.parse(sessionStorage.getItem(UNSENT) || 'null'); } catch (e) { kept = null; }
    if (!kept || document.getElementById('login-form')) { return; }  /* the login page: still kept */
    try { sessionStorage.removeItem(UNSENT); } catch (e) { /* nothing kept */ }
    if (location.hash !== '#unsent' || kept.page !== location.pathname) { return; }
    history.replaceState(null, '', location.pathname + location.search);
    var form = Array.prototype.filter.call(document.querySelectorAll('form'), function (f) {
      return f.getAttribute('action') === kept.action;
    })[0];
    if (!form) { return; }
    /* the page is freshly loaded: what it holds is its defaults (a token's 90 days, Viet Nam), not
       what was typed; a name several fields share (radio buttons) is left as it is */
    Object.keys(kept.values || {}).forEach(function (name) {
      var field = form.elements[name];
      if (field && field.tagName) { field.value = String(kept.values[name]); }
    });
  }());

  /* The stock chooser shows how many labels fit on one sheet. */
  Array.prototype.forEach.call(document.querySelectorAll('[data-select-all]'), function (box) {
    box.addEventListener('focus', function () { box.select(); });
  });
}());
