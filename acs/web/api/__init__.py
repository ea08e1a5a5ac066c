"""The management REST API (routers under /api/v1)."""
