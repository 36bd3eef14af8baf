/* The inspector portal's service worker (served at /portal/inspector/sw.js, scope /portal/inspector/).

   Keeps what an inspector needs with no network: the inspector pages already visited (network
   first, the cached copy when the network fails), their scripts and styles (cached, refreshed in
   the background) and the signed trust list (network first); the page of an inspection started
   with no network (SCOPE + 'offline') is kept from the start. The vendored Ed25519 library is
   among the scripts: offline-verify.js imports it only where WebCrypto has no Ed25519, perhaps for
   the first time with no network. Posts are never touched: checks made offline wait in the page's
   queue (inspector.js), not here. Logging out deletes this cache. */
var CACHE = 'inspector-v1';  /* inspector.js deletes this name on logout */
var SCOPE = '/portal/inspector/';
var ASSETS = ['/static/js/inspector.js', '/static/js/offline-verify.js', '/static/js/gs1-syntax.js',
              '/static/js/portal.js',
              '/static/js/vendor/noble-ed25519.js',
              '/static/css/site.css', '/static/css/portal.css', '/static/css/inspector.css'];
var TRUST_LIST = '/api/v1/trust-list';
/* A kept photo is evidence, not something to check offline with: left to the network, so it is not
   stored on the phone, and offline the browser says it is offline instead of showing the home page. */
var PHOTO = /\/checks\/\d+\/photo$/;

function keep(cache, request, response) {
  /* Only real answers: never a redirect to the login page, an error or a private download.
     Resolves once the copy is stored, so that install is over only when the cache is filled. */
  if (response && response.ok && !response.redirected && response.type === 'basic' &&
      (response.headers.get('Cache-Control') || '').indexOf('no-store') < 0) {
    return cache.put(request, response.clone()).then(function () { return response; },
                                                      function () { return response; });
  }
  return Promise.resolve(response);
}

self.addEventListener('install', function (event) {
  event.waitUntil(caches.open(CACHE).then(function (cache) {
    return Promise.all(ASSETS.concat([SCOPE, SCOPE + 'offline', TRUST_LIST]).map(function (url) {
      return fetch(url, { credentials: 'same-origin' }).then(function (r) { return keep(cache, url, r); },
                                                             function () {});
    }));
  }).then(function () { return self.skipWaiting(); }));
});

function dropPhotos() {
  /* Photos an earlier version of this worker stored (before PHOTO was left to the network). */
  return caches.open(CACHE).then(function (cache) {
    return cache.keys().then(function (requests) {
      return Promise.all(requests.filter(function (r) { return PHOTO.test(new URL(r.url).pathname); })
        .map(function (r) { return cache.delete(r); }));
    });
  });
}

self.addEventListener('activate', function (event) {
  event.waitUntil(caches.keys().then(function (names) {
    return Promise.all(names.filter(function (n) { return n.indexOf('inspector-') === 0 && n !== CACHE; })
      .map(function (n) { return caches.delete(n); }));
  }).then(dropPhotos).then(function () { return self.clients.claim(); }));
});

function networkFirst(request, fallback) {
  return caches.open(CACHE).then(function (cache) {
    return fetch(request).then(function (response) { return keep(cache, request, response); }, function () {
      return cache.match(request, { ignoreVary: true }).then(function (hit) {
        if (hit || !fallback) { return hit || Response.error(); }
        return cache.match(fallback).then(function (page) { return page || Response.error(); });
      });
    });
  });
}

function cacheFirst(request) {
  return caches.open(CACHE).then(function (cache) {
    return cache.match(request).then(function (hit) {
      var refresh = fetch(request).then(function (response) { return keep(cache, request, response); });
      if (hit) { refresh.catch(function () {}); return hit; }
      return refresh;
    });
  });
}

self.addEventListener('fetch', function (event) {
  var request = event.request;
  if (request.method !== 'GET') { return; }
  var url = new URL(request.url);
  if (url.origin !== self.location.origin) { return; }
  if (url.pathname === TRUST_LIST) { event.respondWith(networkFirst(request)); return; }
  if (ASSETS.indexOf(url.pathname) >= 0) { event.respondWith(cacheFirst(request)); return; }
  if (url.pathname.indexOf(SCOPE) === 0 && request.mode === 'navigate' && !PHOTO.test(url.pathname)) {
    event.respondWith(networkFirst(request, SCOPE));
  }
});
