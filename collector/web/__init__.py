"""The machine-room dashboard: an HTTPS web application served by the collector.

`app.py` (aiohttp routes, sign-in, CSRF, Server-Sent Events), `users.py` (local users and
sessions in `web.db`), `fleet.py` (one-pass reads of the whole fleet), `views.py` (HTML),
`static/` (CSS, JS; no CDN) and `templates/` (the page layout).
"""
