// ESP Admin's service worker: it shows the alert notifications the server pushes (Web Push,
// encrypted for this browser) and opens the alert history when one is clicked. It does not
// intercept requests: the UI works without it.
self.addEventListener('push', (event) => {
  let n = { title: 'ESP Admin', body: '' };
  try {
    n = Object.assign(n, event.data ? event.data.json() : {});
  } catch (e) {
    n.body = event.data ? event.data.text() : '';
  }
  event.waitUntil(self.registration.showNotification(n.title, {
    body: n.body,
    tag: n.tag || undefined,
    data: { url: n.url || '/' },
  }));
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const url = (event.notification.data && event.notification.data.url) || '/';
  event.waitUntil((async () => {
    const wins = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
    for (const w of wins) {
      if (w.url === url && 'focus' in w) return w.focus();
    }
    return self.clients.openWindow(url);
  })());
});
