"""The REST API and web dashboard (extra ``sqljobs[dashboard]``).

Use it through :func:`sqljobs.fastapi.router`; this package holds its parts: ``api.py``
(JSON routes), ``dashboard.py`` (HTML pages), ``schemas.py`` (response models),
``_csrf.py`` (form protection), ``templates/`` and ``static/`` (vendored, no build step).
"""

from __future__ import annotations

from .router import router

__all__ = ["router"]
