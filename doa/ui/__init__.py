"""``doa ui``: a local web page over a running system (needs the ``doa[ui]`` extra, aiohttp).

- :mod:`doa.ui.app`: the aiohttp app and its JSON endpoints, :func:`doa.ui.app.serve`;
- :mod:`doa.ui.reads`: a stream's last records, drift and model events, lineage (blocking
  reads, run in threads);
- :mod:`doa.ui.graph`: the topology graph's layout, drawn by the page as SVG;
- ``static/``: the page (HTML, CSS, JS, no library and nothing loaded from elsewhere).

Importing this package imports nothing else (aiohttp is imported by :mod:`doa.ui.app`).
"""

from __future__ import annotations
