"""``farm serve``: webhooks and the API for changes (ASGI, FastAPI)."""
