"""Bridges to other libraries' checkpoint layouts (today: diffusers' DiT pipeline)."""
