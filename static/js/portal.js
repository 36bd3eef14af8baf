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
  });
  function release(form) { form.classList.remove(SENDING); form.removeAttribute('aria-busy'); }
  /* Back to a page the browser kept: its forms can be sent again. */
  window.addEventListener('pageshow', function () {
    Array.prototype.forEach.call(document.querySelectorAll('form.' + SENDING), release);
  });
  /* The stock chooser shows how many labels fit on one sheet. */
  Array.prototype.forEach.call(document.querySelectorAll('[data-select-all]'), function (box) {
    box.addEventListener('focus', function () { box.select(); });
  });
}());
