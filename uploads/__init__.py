"""Uploads: storage backends, presigned uploads, materials and review."""
