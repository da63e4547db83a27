"""The analytics API and dashboard (docs/api.md)."""
