// cloudcloud service worker. It keeps one thing for when the server cannot
// be reached: a page that says so and retries, instead of the browser's
// own error page. Everything else goes to the network as usual; the app
// never shows stale state from a cache. The server fills in the two
// placeholders (the cache name changes with every build).
'use strict';

const CACHE = 'cloudcloud-__BUILD__';
const OFFLINE = '/offline.html';
const PRECACHE = __PRECACHE__;

self.addEventListener('install', (ev) => {
  ev.waitUntil(caches.open(CACHE).then((c) => c.addAll(PRECACHE)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (ev) => {
  ev.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

self.addEventListener('fetch', (ev) => {
  const req = ev.request;
  if (req.mode === 'navigate') {
    ev.respondWith(fetch(req).catch(() => caches.match(OFFLINE)));
    return;
  }
  // The offline page's own style and icon, when the network is gone.
  if (req.method === 'GET' && PRECACHE.includes(new URL(req.url).pathname)) {
    ev.respondWith(fetch(req).catch(() => caches.match(req)));
  }
});
