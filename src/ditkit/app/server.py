"""Serving the app: a request queue, local-only by default, no share links, no telemetry."""

from __future__ import annotations

from . import require_gradio
from .ui import CSS, AppSettings, build_app

QUEUE_SIZE = 32  # waiting requests beyond this are turned away instead of piling up


def serve(settings: AppSettings, *, host: str = "127.0.0.1", port: int | None = None, block: bool = True):
    """Build and launch the app; returns the running Blocks (``block=False``) after it is up."""
    require_gradio()
    app = build_app(settings)
    # One sampling request at a time (the model and memory are shared); monitor and explorer requests
    # have their own lanes, so a long generation does not freeze the monitor.
    app.queue(max_size=QUEUE_SIZE, default_concurrency_limit=1)
    _, url, _ = app.launch(server_name=host, server_port=port, share=False, inbrowser=False, ssr_mode=False,
                           mcp_server=False, show_error=True, allowed_paths=[settings.out_root],
                           prevent_thread_lock=True, quiet=True, footer_links=[], css=CSS)
    print(f"ditkit app: serving on {url} (Ctrl+C stops it)", flush=True)
    if block:
        app.block_thread()
    return app
