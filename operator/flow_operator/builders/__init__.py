"""Pure builders of the objects the operator owns (dicts, ready for server-side apply)."""
