/* Portal pages: ask before destructive actions (forms with data-confirm). Every page works without it. */
(function () {
  'use strict';
  document.documentElement.classList.add('js');
  document.addEventListener('submit', function (event) {
    var form = event.target;
    var question = form && form.getAttribute && form.getAttribute('data-confirm');
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });
  /* The stock chooser shows how many labels fit on one sheet. */
  Array.prototype.forEach.call(document.querySelectorAll('[data-select-all]'), function (box) {
    box.addEventListener('focus', function () { box.select(); });
  });
}());
