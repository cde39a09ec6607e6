"""``ditkit app``: a local web app (Gradio) to generate from, monitor and size DiT models.

The tab logic lives in plain modules that know nothing of Gradio, so it is testable without a browser; ``ui`` lays
the tabs out and ``server`` serves them. Gradio is an optional extra: importing this package does not import it.

- ``models``: the model choices, what each takes as conditioning, a cache of loaded models
- ``generation``: the Generate tab: check a request, sample a DiT (classes or prompts; per-step progress), or hand
  a UniDiffuser request to ``uni``
- ``uni``: the Generate tab for UniDiffuser modes
- ``results``: ``GenerateResult`` and ``write_downloads``, what both give back
- ``monitor``: the Train-monitor tab: read a run folder while it trains
- ``explorer``: the Model-explorer tab: Gflops, parameters and tokens vs the paper
- ``ui``, ``server``: the page (Gradio) and serving it (a queue, local only)
"""

from __future__ import annotations

from ..errors import DitkitError

INSTALL_HINT = 'the web app needs gradio: pip install "ditkit[app]"'


def require_gradio():
    """Import gradio with analytics off, or say how to install it (DitkitError)."""
    import os

    # No telemetry, no version check, no hub calls: the app is local and must work offline.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        import gradio
    except ImportError:
        raise DitkitError(INSTALL_HINT) from None
    return gradio


__all__ = ["INSTALL_HINT", "require_gradio"]
